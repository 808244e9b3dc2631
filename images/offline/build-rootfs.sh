#!/usr/bin/env bash
# Build the offline sandbox base root filesystem from Debian's packages and write it
# as a tar stream to $2. No registry needed: this is what `runner images build` runs
# when runner.toml says recipe = "offline".
#
# usage: build-rootfs.sh MIRROR OUT.tar [SUITE]
#   MIRROR  the Debian mirror the host's apt already uses (the runner reads it from
#           /etc/apt/sources.list*), so no host name is baked into the recipe.
set -euo pipefail
mirror=$1
out=$2
suite=${3:-bookworm}
packages=python3,python3-venv,python3-pip,git,ca-certificates

root=$(mktemp -d /var/tmp/fixrunner-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$root"' EXIT

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2

# The sandbox user: a fixed non-root uid with no login and /tmp as home.
echo 'sandbox:x:10001:10001:fixrunner sandbox:/tmp:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'sandbox:x:10001:' >>"$root/etc/group"
mkdir -p "$root/work" "$root/results" "$root/opt"
chmod 0777 "$root/work" "$root/results"

# Trim what a sandbox never needs: package caches and lists, docs, man pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/log/*.log "$root"/tmp/*
# pip refuses system installs on Debian (PEP 668); the env image uses its own venv.

tar --numeric-owner -C "$root" -cf "$out" .
