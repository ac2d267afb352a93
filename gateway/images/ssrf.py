"""Which image URLs the gateway may fetch: scheme, host name and every resolved address checked.

Blocked unless an operator allows them: loopback, private, link-local, multicast, reserved,
unspecified, carrier-grade NAT, documentation and other non-global ranges, cloud metadata
addresses, and IPv6 forms that embed such an IPv4 address (mapped, compatible, 6to4, NAT64,
Teredo). Host names are read the way C resolvers read them, so ``2130706433``, ``0x7f.1`` and
``0177.0.0.1`` are all 127.0.0.1. The URL is parsed once, by the same parser the fetcher
connects with, so the checked host is the fetched host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from gateway.errors import InvalidRequestError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "192.0.0.192",
    "fd00:ec2::254", "fd00:ec2::23")}
_BLOCKED_NETS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4",
    "255.255.255.255/32", "fec0::/10", "100::/64", "2001:db8::/32", "3fff::/20",
    "64:ff9b:1::/48")]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BLOCKED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
                  "metadata", "metadata.google.internal", "instance-data",
                  "instance-data.ec2.internal")
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local")


class BlockedURL(InvalidRequestError):
    """The URL or an address it resolves to is not allowed."""

    default_code = "image_url_blocked"


@dataclass(frozen=True, slots=True)
class Target:
    """One checked hop: what to connect to and what to ask for."""

    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets, no trailing dot
    port: int
    target: bytes  # path and query, percent-encoded
    authority: bytes  # the Host header


def embedded_ipv4(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv6 one (mapped, compatible, 6to4, NAT64, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    packed = ip.packed
    if packed[:12] == b"\x00" * 12 and packed[12:] not in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01"):
        return ipaddress.IPv4Address(packed[12:])  # deprecated IPv4-compatible ::a.b.c.d
    if ip in _NAT64:
        return ipaddress.IPv4Address(packed[12:])
    return None


def blocked_reason(ip: IP) -> str | None:
    """Why an address may not be fetched, or None when it is public."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = blocked_reason(inner)
        return f"{reason} (embedded in {ip})" if reason else None
    if ip in _METADATA:
        return "a cloud metadata address"
    checks = (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
              ("private", ip.is_private), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved), ("unspecified", ip.is_unspecified),
              ("special-purpose", any(ip in net for net in _BLOCKED_NETS if net.version == ip.version)),
              ("non-global", not ip.is_global))
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


def parse_ip_host(host: str) -> IP | None:
    """The address a host string denotes by itself (any IPv4 spelling, IPv6), else None."""
    text = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and text[0].isdigit():
        try:  # inet_aton reads 127.1, 0x7f000001, 2130706433, 0177.0.0.1 like libc does
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _invalid(message: str, param: str | None) -> BlockedURL:
    return BlockedURL(message, param=param, code="invalid_image_url")


@dataclass(frozen=True)
class UrlPolicy:
    """An operator's rules for image URLs.

    Rules in ``allowed_hosts`` / ``denied_hosts`` are host names (``images.example.com``),
    wildcard suffixes (``*.example.com``: subdomains only) or addresses and CIDRs. A denied rule
    always wins; an allowed one exempts its hosts from the address checks.
    """

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()
    denied_hosts: tuple[str, ...] = ()

    def _matches(self, host: str, ip: IP | None, rules: Iterable[str]) -> bool:
        for rule in (r.strip().lower().rstrip(".") for r in rules):
            if not rule:
                continue
            if "/" in rule or parse_ip_host(rule) is not None:
                try:
                    if ip is not None and ip in ipaddress.ip_network(rule.strip("[]"), strict=False):
                        return True
                except ValueError:
                    continue
            elif host == rule or (rule.startswith("*.") and host.endswith(rule[1:])):
                return True
        return False

    def check_url(self, url: str, param: str | None) -> Target:
        """Parse and check one hop's URL before anything is resolved or connected.

        Raises:
            BlockedURL: bad scheme or URL, credentials, a denied or local host name or address.
        """
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
            self._refuse_unparsed(url, param)
            raise _invalid("Invalid image URL", param) from exc
        scheme = parsed.scheme
        if scheme not in ("https", "http") or (scheme == "http" and not self.allow_http):
            allowed = "https" + (" or http" if self.allow_http else "")
            raise _invalid(f"Image URLs must use {allowed}, or be data: URIs", param)
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
        if not host or parsed.userinfo or not 0 < port < 65536:
            raise _invalid("Image URLs need a host, a valid port and no credentials", param)
        ip = parse_ip_host(host)
        self._check_host(host, ip, param)
        default = port == (443 if scheme == "https" else 80)
        host = str(ip) if ip is not None else host  # canonical: 0x7f.1 is 127.0.0.1
        shown = f"[{host}]" if isinstance(ip, ipaddress.IPv6Address) else host
        authority = (shown if default else f"{shown}:{port}").encode("ascii")
        return Target(scheme, host, port, parsed.raw_path, authority)

    def _refuse_unparsed(self, url: str, param: str | None) -> None:
        """Name the reason when a URL the fetcher cannot parse points at a blocked address."""
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return
        ip = parse_ip_host(host)
        if ip is not None:
            self._check_host(host, ip, param)

    def _check_host(self, host: str, ip: IP | None, param: str | None) -> None:
        if self._matches(host, ip, self.denied_hosts):
            raise BlockedURL(f"Image host '{host}' is denied by this server", param=param)
        if self._matches(host, ip, self.allowed_hosts):
            return
        if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
            raise BlockedURL(f"Image host '{host}' is a local name", param=param)
        if ip is not None and (reason := blocked_reason(ip)):
            raise BlockedURL(f"Image URL points to {reason}", param=param)

    def check_address(self, host: str, ip: IP, param: str | None) -> None:
        """Check one address a host name resolved to.

        Raises:
            BlockedURL: the address is denied, or not public and the host is not allowed.
        """
        if self._matches(host, ip, self.denied_hosts):
            raise BlockedURL(f"Image host '{host}' is denied by this server", param=param)
        if self._matches(host, ip, self.allowed_hosts):
            return
        if reason := blocked_reason(ip):
            raise BlockedURL(f"Image URL host '{host}' resolves to {reason}", param=param)
