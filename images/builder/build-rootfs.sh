#!/usr/bin/env bash
# The builder variant of the offline base: the same Debian root filesystem plus a C
# compiler and the Python headers, for projects with C extensions. Environment images
# of such projects start from it; everything else keeps the smaller base.
#
# usage: build-rootfs.sh MIRROR OUT.tar [SUITE]
set -euo pipefail
mirror=$1
out=$2
suite=${3:-bookworm}
packages=python3,python3-venv,python3-pip,git,ca-certificates,gcc,libc6-dev,python3-dev

root=$(mktemp -d /var/tmp/fixrunner-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$root"' EXIT

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2

# The sandbox user, as in the base recipe.
echo 'sandbox:x:10001:10001:fixrunner sandbox:/tmp:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'sandbox:x:10001:' >>"$root/etc/group"
mkdir -p "$root/work" "$root/results" "$root/opt"
chmod 0777 "$root/work" "$root/results"

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/log/*.log "$root"/tmp/*

tar --numeric-owner -C "$root" -cf "$out" .
