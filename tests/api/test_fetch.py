"""The URL image fetcher refuses what could reach internal services, on every hop."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.ingest.fetch import FetchError, FetchPolicy, address_refusal, fetch_image

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 1000


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        routes = {
            "/img.png": (200, {"Content-Type": "image/png"}, PNG),
            "/big": (200, {}, b"y" * 50_000),
            "/to-img": (302, {"Location": "/img.png"}, b""),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
            "/to-private": (302, {"Location": "http://10.1.2.3/x.png"}, b""),
            "/to-ftp": (302, {"Location": "ftp://example.com/x"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/missing": (404, {}, b"no"),
        }
        if self.path == "/slow":
            time.sleep(2)
            status, headers, body = 200, {}, PNG
        else:
            status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOOPBACK_OK = FetchPolicy(
    enabled=True,
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    timeout_seconds=1.0,
    max_bytes=10_000,
)


def code_of(url: str, policy: FetchPolicy) -> str:
    with pytest.raises(FetchError) as err:
        fetch_image(url, policy)
    assert err.value.reason
    return err.value.code


def test_disabled_by_default(server: str) -> None:
    assert code_of(f"{server}/img.png", FetchPolicy()) == "url_fetch_disabled"


def test_https_only_unless_allowed(server: str) -> None:
    assert code_of(f"{server}/img.png", FetchPolicy(enabled=True)) == "url_scheme_refused"
    assert code_of("file:///etc/passwd", FetchPolicy(enabled=True)) == "url_scheme_refused"


def test_loopback_and_private_refused(server: str) -> None:
    policy = FetchPolicy(enabled=True, allow_http=True)
    assert code_of(f"{server}/img.png", policy) == "url_address_refused"
    assert code_of("http://localhost/img.png", policy) == "url_address_refused"
    assert code_of("http://[::1]/x", policy) == "url_address_refused"
    rebind = FetchPolicy(
        enabled=True, allow_http=True, resolver=lambda h, p: ["8.8.8.8", "10.0.0.5"]
    )
    assert code_of("http://mixed.example/x", rebind) == "url_address_refused"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "100.64.0.1",
    ],
)
def test_address_refusal(address: str) -> None:
    assert address_refusal(address) is not None


def test_public_addresses_pass() -> None:
    assert address_refusal("8.8.8.8") is None
    assert address_refusal("2001:4860:4860::8888") is None


def test_allow_list(server: str) -> None:
    policy = FetchPolicy(enabled=True, allowed_hosts=("img.example.com", "*.cdn.example"))
    assert policy.host_allowed("img.example.com") and policy.host_allowed("a.cdn.example")
    assert not policy.host_allowed("cdn.example") and not policy.host_allowed("evil.com")
    assert code_of("https://evil.com/x.png", policy) == "url_host_refused"


def test_fetch_and_redirects(server: str) -> None:
    assert fetch_image(f"{server}/img.png", LOOPBACK_OK) == PNG
    assert fetch_image(f"{server}/to-img", LOOPBACK_OK) == PNG
    assert code_of(f"{server}/to-metadata", LOOPBACK_OK) == "url_address_refused"
    assert code_of(f"{server}/to-private", LOOPBACK_OK) == "url_address_refused"
    assert code_of(f"{server}/to-ftp", LOOPBACK_OK) == "url_scheme_refused"
    assert code_of(f"{server}/loop", LOOPBACK_OK) == "url_too_many_redirects"
    assert code_of(f"{server}/missing", LOOPBACK_OK) == "url_bad_response"


def test_size_and_time_caps(server: str) -> None:
    assert code_of(f"{server}/big", LOOPBACK_OK) == "url_too_large"
    started = time.monotonic()
    assert code_of(f"{server}/slow", LOOPBACK_OK) == "url_timeout"
    assert time.monotonic() - started < 1.8
