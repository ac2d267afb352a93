"""The image URL policy on a table of addresses, host spellings and schemes."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.images.ssrf import BlockedURL, Target, UrlPolicy, blocked_reason, embedded_ipv4, parse_ip_host

P = "messages[0].content[0].image_url.url"

BLOCKED = [
    "https://127.0.0.1/x.png", "https://127.1/x.png", "https://2130706433/x.png",
    "https://0x7f000001/x.png", "https://0x7f.1/x.png", "https://0177.0.0.1/x.png",
    "https://017700000001/x.png", "https://127.255.255.254/x.png", "https://0.0.0.0/x.png",
    "https://0/x.png", "https://10.0.0.1/x.png", "https://10.255.255.255/x.png",
    "https://172.16.0.1/x.png", "https://172.31.255.1/x.png", "https://192.168.1.1/x.png",
    "https://169.254.169.254/latest/meta-data/", "https://169.254.170.2/v2/credentials",
    "https://100.100.100.200/latest/meta-data", "https://100.64.0.1/x.png",
    "https://192.0.0.192/x.png", "https://198.18.0.1/x.png", "https://224.0.0.1/x.png",
    "https://239.255.255.250/x.png", "https://240.0.0.1/x.png", "https://255.255.255.255/x.png",
    "https://[::1]/x.png", "https://[::]/x.png", "https://[::ffff:127.0.0.1]/x.png",
    "https://[::ffff:7f00:1]/x.png", "https://[::ffff:169.254.169.254]/x.png",
    "https://[::127.0.0.1]/x.png", "https://[fe80::1]/x.png", "https://[fe80::1%25eth0]/x.png",
    "https://[fc00::1]/x.png", "https://[fd00:ec2::254]/x.png", "https://[fec0::1]/x.png",
    "https://[ff02::1]/x.png", "https://[2002:7f00:1::]/x.png", "https://[2002:a9fe:a9fe::]/x.png",
    "https://[64:ff9b::a9fe:a9fe]/x.png", "https://[64:ff9b::7f00:1]/x.png",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.png",  # Teredo for 127.0.0.1
    "https://localhost/x.png", "https://LOCALHOST./x.png", "https://foo.localhost/x.png",
    "https://metadata.google.internal/computeMetadata/v1/", "https://metadata/x.png",
    "https://127.0.0.1./x.png", "https://localhost\u3002/x.png", "https://0x7f.0x0.0x0.0x1/x.png",
    "https://127.000.000.001/x.png", "https://[0:0:0:0:0:ffff:127.0.0.1]/x.png",
    "https://[::ffff:a9fe:a9fe]/x.png", "https://[fd00:ec2::23]/x.png", "https://[3fff::1]/x.png",
    "https://[64:ff9b:1::a00:1]/x.png", "https://instance-data/x.png", "https://db.internal/x",
    "https://printer.local/x.png",
]
ALLOWED = [
    "https://8.8.8.8/x.png", "https://1.1.1.1/x.png", "https://93.184.215.14/x.png",
    "https://[2606:4700:4700::1111]/x.png", "https://[2002:808:808::]/x.png",
    "https://[64:ff9b::808:808]/x.png", "https://upload.wikimedia.org/x.png",
    "https://example.com:8443/x.png",
]
BAD_SCHEMES = ["http://8.8.8.8/x.png", "file:///etc/passwd", "ftp://8.8.8.8/x", "gopher://x/",
               "javascript:alert(1)", "https://user:pw@8.8.8.8/x.png", "https:///x.png",
               "https://8.8.8.8:99999/x.png", "https://127.0.0.1:443@8.8.8.8/x.png",
               "https://8.8.8.8\\@127.0.0.1/x.png",  # parsers disagree on the host: refused
               "data:image/png;base64,AAAA", "//8.8.8.8/x.png", "https://[::1/x.png"]


@pytest.mark.parametrize("url", BLOCKED)
def test_blocked(url: str) -> None:
    with pytest.raises(BlockedURL) as info:
        UrlPolicy().check_url(url, P)
    assert info.value.code == "image_url_blocked" and info.value.param == P


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    target = UrlPolicy().check_url(url, P)
    assert target.scheme == "https" and target.host and target.port in (443, 8443)


@pytest.mark.parametrize("url", BAD_SCHEMES)
def test_bad_urls(url: str) -> None:
    with pytest.raises(BlockedURL) as info:
        UrlPolicy().check_url(url, P)
    assert info.value.code == "invalid_image_url"


def test_the_checked_host_is_the_fetched_host() -> None:
    target = UrlPolicy().check_url("https://B\u00fccher.Example./a b?q=1", P)
    assert (target.host, target.port, target.target) == ("xn--bcher-kva.example", 443,
                                                         b"/a%20b?q=1")
    assert target.authority == b"xn--bcher-kva.example"
    target = UrlPolicy(allowed_hosts=("0.0.0.0/0",)).check_url("https://0x7f.1:8443/", P)
    assert (target.host, target.authority) == ("127.0.0.1", b"127.0.0.1:8443")
    target = UrlPolicy().check_url("https://[2606:4700:4700::1111]/x", P)
    assert (target.host, target.authority) == ("2606:4700:4700::1111", b"[2606:4700:4700::1111]")


def test_table_is_big_enough() -> None:
    assert len(BLOCKED) + len(ALLOWED) + len(BAD_SCHEMES) >= 40


@pytest.mark.parametrize(("host", "ip"), [
    ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("[::1]", "::1"), ("example.com", None),
    ("1e5", None), ("08.0.0.1", None),
])
def test_host_spellings(host: str, ip: str | None) -> None:
    parsed = parse_ip_host(host)
    assert (str(parsed) if parsed else None) == ip


def test_http_only_when_allowed_and_operator_lists() -> None:
    policy = UrlPolicy(allow_http=True, allowed_hosts=("10.0.0.0/8", "images.internal"),
                       denied_hosts=("evil.example", "8.8.4.4"))
    assert policy.check_url("http://10.1.2.3/x.png", P).host == "10.1.2.3"
    policy.check_address("images.internal", ipaddress.ip_address("192.168.0.5"), P)
    with pytest.raises(BlockedURL):
        policy.check_url("https://evil.example/x.png", P)
    wild = UrlPolicy(allowed_hosts=("*.corp.example",), denied_hosts=("bad.corp.example",))
    wild.check_address("img.corp.example", ipaddress.ip_address("10.0.0.1"), P)
    for host in ("corp.example", "bad.corp.example", "img.corp.example.evil"):
        with pytest.raises(BlockedURL):
            wild.check_address(host, ipaddress.ip_address("10.0.0.1"), P)
    with pytest.raises(BlockedURL):
        policy.check_url("https://8.8.4.4/x.png", P)
    with pytest.raises(BlockedURL):  # a public name that resolves to a private address
        policy.check_address("rebind.example", ipaddress.ip_address("127.0.0.1"), P)
    with pytest.raises(BlockedURL):
        policy.check_address("rebind.example", ipaddress.ip_address("::ffff:192.168.1.1"), P)


def test_reasons_name_the_range() -> None:
    assert "metadata" in blocked_reason(ipaddress.ip_address("169.254.169.254"))  # type: ignore[operator]
    assert "embedded" in blocked_reason(ipaddress.ip_address("::ffff:10.0.0.1"))  # type: ignore[operator]
    assert blocked_reason(ipaddress.ip_address("8.8.8.8")) is None


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "a loopback address"), ("169.254.1.1", "a link-local address"),
    ("10.0.0.1", "a private address"), ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a private address"), ("100.64.0.1", "a special-purpose address"),
    ("192.0.0.8", "a special-purpose address"), ("169.254.169.254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"), ("::1", "a loopback address"),
    ("fe80::1", "a link-local address"), ("fc00::1", "a private address"),
    ("ff02::1", "a multicast address"), ("3fff::1", "a special-purpose address"),
    ("fec0::1", "a special-purpose address"), ("64:ff9b:1::1", "a reserved address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("::ffff:7f00:1", "a loopback address (embedded in ::ffff:7f00:1)"),
    ("2002:a00:1::", "a private address (embedded in 2002:a00:1::)"),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address (embedded in 64:ff9b::a9fe:a9fe)"),
    ("8.8.8.8", None), ("::ffff:8.8.8.8", None), ("2606:4700:4700::1111", None),
])
def test_blocked_reason_names_the_range(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("address", "inner"), [
    ("::ffff:1.2.3.4", "1.2.3.4"), ("2002:102:304::", "1.2.3.4"), ("::1.2.3.4", "1.2.3.4"),
    ("64:ff9b::102:304", "1.2.3.4"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo: the client, not the server
    ("::1", None), ("::", None), ("2606:4700::1111", None), ("1.2.3.4", None),
])
def test_embedded_ipv4(address: str, inner: str | None) -> None:
    got = embedded_ipv4(ipaddress.ip_address(address))
    assert (str(got) if got is not None else None) == inner


@pytest.mark.parametrize(("host", "ip"), [
    ("127.0.0.1.", "127.0.0.1"), ("fe80::1%eth0", "fe80::1"), ("[fe80::1%25eth0]", "fe80::1"),
    ("", None), ("0x", None), ("1.2.3.4.5", None), ("0xg", None), (".1", None), ("a.1", None),
])
def test_more_host_spellings(host: str, ip: str | None) -> None:
    parsed = parse_ip_host(host)
    assert (str(parsed) if parsed else None) == ip


def _blocked(policy: UrlPolicy, url: str) -> BlockedURL:
    with pytest.raises(BlockedURL) as info:
        policy.check_url(url, P)
    assert info.value.param == P and info.value.status == 400
    return info.value


@pytest.mark.parametrize(("policy", "url", "message", "code"), [
    (UrlPolicy(), "http://8.8.8.8/x", "Image URLs must use https, or be data: URIs", "invalid_image_url"),
    (UrlPolicy(allow_http=True), "ftp://8.8.8.8/x", "Image URLs must use https or http, or be data: URIs",
     "invalid_image_url"),
    (UrlPolicy(), "https://u:p@8.8.8.8/x", "Image URLs need a host, a valid port and no credentials",
     "invalid_image_url"),
    (UrlPolicy(), "https://8.8.8.8:65536/x", "Image URLs need a host, a valid port and no credentials",
     "invalid_image_url"),
    # Port 0 is no port: it must not fall back to 443 (it would fetch from a port nobody named).
    (UrlPolicy(), "https://8.8.8.8:0/x", "Image URLs need a host, a valid port and no credentials",
     "invalid_image_url"),
    (UrlPolicy(), "https://8.8.8.8:abc/", "Invalid image URL", "invalid_image_url"),
    (UrlPolicy(), "https://[::1/x.png", "Invalid image URL", "invalid_image_url"),
    (UrlPolicy(), "https://127.0.0.1:abc/", "Image URL points to a loopback address", "image_url_blocked"),
    (UrlPolicy(), "https://localhost./x", "Image host 'localhost' is a local name", "image_url_blocked"),
    (UrlPolicy(), "https://a.b.internal/x", "Image host 'a.b.internal' is a local name", "image_url_blocked"),
    (UrlPolicy(), "https://0x7f.1/x", "Image URL points to a loopback address", "image_url_blocked"),
    (UrlPolicy(denied_hosts=("", "Evil.Example.",)), "https://evil.example/x",
     "Image host 'evil.example' is denied by this server", "image_url_blocked"),
    (UrlPolicy(denied_hosts=("[::1]",)), "https://[::1]/x", "Image host '::1' is denied by this server",
     "image_url_blocked"),
    (UrlPolicy(denied_hosts=("10.0.0.0/99", "8.8.0.0/16")), "https://8.8.8.8/x",
     "Image host '8.8.8.8' is denied by this server", "image_url_blocked"),
    (UrlPolicy(allowed_hosts=("8.8.8.8",), denied_hosts=("8.8.8.8",)), "https://8.8.8.8/x",
     "Image host '8.8.8.8' is denied by this server", "image_url_blocked"),
    (UrlPolicy(allowed_hosts=("*.corp.example",)), "https://xcorp.example.internal/x",
     "Image host 'xcorp.example.internal' is a local name", "image_url_blocked"),
])
def test_refusals_say_why(policy: UrlPolicy, url: str, message: str, code: str) -> None:
    err = _blocked(policy, url)
    assert (err.message, err.code) == (message, code)


def test_allowed_rules_are_trimmed_and_exempt_their_hosts() -> None:
    policy = UrlPolicy(allowed_hosts=("", "10.0.0.0/99", " Images.Internal. ", "127.0.0.0/8", "*.corp.local"))
    assert policy.check_url("https://images.internal/x", P).host == "images.internal"
    assert policy.check_url("https://127.0.0.2/x", P).host == "127.0.0.2"
    assert policy.check_url("https://a.corp.local/x", P).host == "a.corp.local"
    assert _blocked(policy, "https://corp.local/x").message == "Image host 'corp.local' is a local name"
    policy.check_address("images.internal", ipaddress.ip_address("10.1.1.1"), P)
    policy.check_address("anything", ipaddress.ip_address("127.9.9.9"), P)


def test_check_address_messages() -> None:
    policy = UrlPolicy(denied_hosts=("bad.example", "9.9.9.9"))
    with pytest.raises(BlockedURL) as info:
        policy.check_address("rebind.example", ipaddress.ip_address("192.168.1.1"), P)
    assert (info.value.message, info.value.code, info.value.param) == (
        "Image URL host 'rebind.example' resolves to a private address", "image_url_blocked", P)
    with pytest.raises(BlockedURL) as denied:
        policy.check_address("bad.example", ipaddress.ip_address("8.8.8.8"), P)
    assert denied.value.message == "Image host 'bad.example' is denied by this server"
    with pytest.raises(BlockedURL) as by_ip:
        policy.check_address("good.example", ipaddress.ip_address("9.9.9.9"), P)
    assert by_ip.value.message == "Image host 'good.example' is denied by this server"
    policy.check_address("good.example", ipaddress.ip_address("8.8.8.8"), P)


@pytest.mark.parametrize(("policy", "url", "target"), [
    (UrlPolicy(allow_http=True), "http://example.com/a?b=1",
     Target("http", "example.com", 80, b"/a?b=1", b"example.com")),
    (UrlPolicy(allow_http=True), "http://example.com:80/", Target("http", "example.com", 80, b"/", b"example.com")),
    (UrlPolicy(allow_http=True), "http://example.com:443/",
     Target("http", "example.com", 443, b"/", b"example.com:443")),
    (UrlPolicy(), "https://example.com:443/", Target("https", "example.com", 443, b"/", b"example.com")),
    (UrlPolicy(), "https://example.com:80/", Target("https", "example.com", 80, b"/", b"example.com:80")),
    (UrlPolicy(), "https://Example.COM./x", Target("https", "example.com", 443, b"/x", b"example.com")),
    (UrlPolicy(), "https://example.com:65535/", Target("https", "example.com", 65535, b"/", b"example.com:65535")),
    (UrlPolicy(), "https://[2606:4700:4700::1111]:8443/x",
     Target("https", "2606:4700:4700::1111", 8443, b"/x", b"[2606:4700:4700::1111]:8443")),
])
def test_targets(policy: UrlPolicy, url: str, target: Target) -> None:
    assert policy.check_url(url, P) == target


@pytest.mark.parametrize(("host", "ip"), [
    ("fe80::1%a%b", "fe80::1"), ("0X7F.0.0.1", "127.0.0.1"), ("0XA.0XB.0.1", "10.11.0.1"),
])
def test_zones_and_upper_case_hex(host: str, ip: str) -> None:
    assert str(parse_ip_host(host)) == ip


def test_rules_ending_in_x_and_host_cidrs() -> None:
    assert _blocked(UrlPolicy(denied_hosts=("fox",)), "https://fox/x").message == (
        "Image host 'fox' is denied by this server")
    loose = UrlPolicy(allowed_hosts=("127.0.0.1/8",))  # host bits set: still the /8
    assert loose.check_url("https://127.0.0.2/x", P).host == "127.0.0.2"
    with pytest.raises(BlockedURL) as denied:
        UrlPolicy(denied_hosts=("fox",)).check_address("fox", ipaddress.ip_address("8.8.8.8"), P)
    assert (denied.value.message, denied.value.param) == ("Image host 'fox' is denied by this server", P)


def test_hosts_ending_in_x_and_port_one() -> None:
    assert UrlPolicy().check_url("https://fox/x", P) == Target("https", "fox", 443, b"/x", b"fox")
    assert UrlPolicy().check_url("https://fox:1/", P) == Target("https", "fox", 1, b"/", b"fox:1")
