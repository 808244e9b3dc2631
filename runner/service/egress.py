"""Where the service may send a callback: resolved, checked, and pinned addresses.

A callback URL is resolved with the system resolver (which also reads the legacy
spellings ``127.1``, ``2130706433``, ``0x7f000001``, ``017700000001``), and every
address it yields must be public unless ``[service] callback_allowlist`` names the
host or the address. Delivery resolves and checks again and connects to a checked
address, never to a fresh lookup (no DNS rebinding between check and connect).
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from runner.errors import JobInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT_S = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="callback-dns")


class CallbackRefused(JobInputError):
    """A callback URL the service will not deliver to (its message says why)."""


@dataclass(frozen=True)
class CallbackTarget:
    """A callback URL with the addresses it resolved to, all of them checked."""

    url: str
    scheme: str
    host: str  # as written, lower case, without a trailing dot
    port: int
    addresses: tuple[IPAddress, ...]

    def pinned_url(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address`` (the Host header keeps the name)."""
        parts = urlsplit(self.url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        return urlunsplit(
            (parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, "")
        )

    @property
    def host_header(self) -> str:
        """The Host header the receiver expects: the name from the URL (and a non-default port)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme]
        return name if self.port == default else f"{name}:{self.port}"


def parse_allowlist(entries: list[str]) -> tuple[set[str], list[IPNetwork]]:
    """Split allowlist entries into host names and address networks (an address is a /32)."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip().strip("[]")
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            hosts.add(text.lower().rstrip("."))
    return hosts, networks


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_reason(address: IPAddress) -> str | None:
    """Why a callback may not go to this address, or None when it is public."""
    # An address that carries an IPv4 one is judged by where it leads: that address.
    for candidate in _embedded(address) or [address]:
        for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
            if getattr(candidate, f"is_{kind}"):
                return kind.replace("_", "-")
        if not candidate.is_global:
            return "not-global"
    return None


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The IPv4 address an IPv6 one carries (::ffff:127.0.0.1, 6to4, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    carried = (address.ipv4_mapped, address.sixtofour)
    found: list[IPAddress] = [a for a in carried if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def resolve_callback(url: str, allowlist: list[str]) -> CallbackTarget:
    """Resolve and check a callback URL; raise :class:`CallbackRefused` with the reason."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise CallbackRefused("callback_url must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise CallbackRefused("callback_url must not carry user information (user@host)")
    try:
        port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise CallbackRefused("callback_url has an invalid port") from exc
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise CallbackRefused("callback_url has no host")
    addresses = _resolve(host, port)
    hosts, networks = parse_allowlist(allowlist)
    if host not in hosts:
        for address in addresses:
            reason = refused_reason(address)
            if reason and not any(_within(address, net) for net in networks):
                raise CallbackRefused(
                    f"callback_url resolves to a {reason} address ({address}); the service "
                    "delivers only to public addresses unless [service] callback_allowlist "
                    "names the host or address"
                )
    return CallbackTarget(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def _within(address: IPAddress, network: IPNetwork) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address in network or address.ipv4_mapped in network
    return address in network


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    # getaddrinfo has no timeout of its own: bound it from outside.
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT_S)
    except FutureTimeout as exc:
        raise CallbackRefused(f"callback_url's host {host!r} did not resolve in time") from exc
    except (OSError, UnicodeError) as exc:
        raise CallbackRefused(f"callback_url's host {host!r} does not resolve") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise CallbackRefused(f"callback_url's host {host!r} does not resolve")
    return tuple(found)
