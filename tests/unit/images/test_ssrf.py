"""The image URL policy on a table of addresses, host spellings and schemes."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.images.ssrf import BlockedURL, UrlPolicy, blocked_reason, parse_ip_host

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
