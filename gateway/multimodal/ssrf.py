"""Which image URLs the gateway may fetch: scheme, host name and every resolved address checked.

Blocked unless an operator allows them: loopback, private, link-local, multicast, reserved,
unspecified, carrier-grade NAT, cloud metadata addresses, and IPv6 forms that embed such an IPv4
address (mapped, compatible, 6to4, NAT64, Teredo). Host names are parsed the way C resolvers
read them, so ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` are all 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.errors import InvalidRequestError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")}
_BLOCKED_NETS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4",
    "255.255.255.255/32", "fec0::/10", "100::/64", "2001:db8::/32")]
_BLOCKED_NAMES = ("localhost", "localhost.localdomain", "metadata", "metadata.google.internal",
                  "instance-data", "instance-data.ec2.internal")


class BlockedURL(InvalidRequestError):
    """The URL or an address it resolves to is not allowed."""

    default_code = "image_url_blocked"


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
    if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("64:ff9b:1::/48"):
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
              ("special-purpose", any(ip in net for net in _BLOCKED_NETS if net.version == ip.version)))
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


def parse_ip_host(host: str) -> IP | None:
    """The address a host string denotes by itself (any IPv4 spelling, IPv6), else None."""
    text = host.strip("[]")
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


@dataclass(frozen=True)
class UrlPolicy:
    """An operator's rules for image URLs."""

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()  # names or CIDRs exempt from the address checks
    denied_hosts: tuple[str, ...] = ()

    def _matches(self, host: str, ip: IP | None, rules: Iterable[str]) -> bool:
        for rule in rules:
            rule = rule.strip().lower()
            if not rule:
                continue
            if "/" in rule or parse_ip_host(rule) is not None:
                try:
                    if ip is not None and ip in ipaddress.ip_network(rule, strict=False):
                        return True
                except ValueError:
                    continue
            elif host == rule or host.endswith("." + rule.lstrip("*.")) and rule.startswith("*."):
                return True
        return False

    def check_url(self, url: str, param: str) -> tuple[str, str, int]:
        """Scheme, host and port of an allowed URL.

        Raises:
            BlockedURL: bad scheme, credentials, denied or local host name.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BlockedURL(f"Invalid image URL: {exc}", param=param, code="invalid_image_url") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or (scheme == "http" and not self.allow_http):
            allowed = "https" + (" and http" if self.allow_http else "")
            raise BlockedURL(f"Image URLs must use {allowed} (or be data: URIs)", param=param,
                             code="invalid_image_url")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host or parts.username or parts.password:
            raise BlockedURL("Image URL must have a host and no credentials", param=param,
                             code="invalid_image_url")
        ip = parse_ip_host(host)
        if self._matches(host, ip, self.denied_hosts):
            raise BlockedURL(f"Image host '{host}' is denied by this server", param=param)
        if not self._matches(host, ip, self.allowed_hosts):
            if host in _BLOCKED_NAMES or host.endswith(".localhost"):
                raise BlockedURL(f"Image host '{host}' is a local name", param=param)
            if ip is not None and (reason := blocked_reason(ip)):
                raise BlockedURL(f"Image URL points to {reason}", param=param)
        return scheme, host, port or (443 if scheme == "https" else 80)

    def check_address(self, host: str, ip: IP, param: str) -> None:
        """Check one address a host resolved to.

        Raises:
            BlockedURL: the address is not public and the host is not allowed.
        """
        if self._matches(host, ip, self.denied_hosts):
            raise BlockedURL(f"Image host '{host}' is denied by this server", param=param)
        if self._matches(host, ip, self.allowed_hosts):
            return
        if reason := blocked_reason(ip):
            raise BlockedURL(f"Image URL host '{host}' resolves to {reason}", param=param)
