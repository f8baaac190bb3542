"""Fetching listing images by URL, safely (off unless ``FAKEGUARD_IMAGE_FETCH_ENABLED``).

Server-side request forgery defences: https only (unless allowed), an optional host allow-list,
every address the name resolves to must be public (private, loopback, link-local, multicast,
reserved and unspecified ranges are refused, including IPv4-mapped IPv6), the connection goes
to the address that was checked (no second DNS lookup to rebind), every redirect hop is checked
the same way, and time and size are capped.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(Exception):
    """An image URL we did not fetch, with a code and a reason for the caller."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class FetchPolicy:
    enabled: bool = False
    allowed_hosts: tuple[str, ...] = ()  # exact names or "*.example.com"; empty: any public host
    allow_http: bool = False
    max_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 5.0
    max_redirects: int = 3
    #: Exceptions to the private-address refusal (tests and closed networks only).
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver)

    def host_allowed(self, host: str) -> bool:
        if not self.allowed_hosts:
            return True
        host = host.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            pattern = pattern.lower().rstrip(".")
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def address_refusal(address: str, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why an address may not be fetched from, or None if it is public."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return None
    for label, test in (
        ("loopback", ip.is_loopback),
        ("private", ip.is_private),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if test:
            return f"{label} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


def fetch_image(url: str, policy: FetchPolicy) -> bytes:
    """GET an image's bytes under ``policy`` or raise :class:`FetchError`."""
    if not policy.enabled:
        raise FetchError(
            "url_fetch_disabled", "fetching images by URL is switched off; send base64 'data'"
        )
    deadline = time.monotonic() + policy.timeout_seconds
    current = url
    for _hop in range(policy.max_redirects + 1):
        parts = urlsplit(current)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or (scheme == "http" and not policy.allow_http):
            raise FetchError(
                "url_scheme_refused",
                f"only {'http(s)' if policy.allow_http else 'https'} URLs are fetched: {current!r}",
            )
        host = parts.hostname
        if not host:
            raise FetchError("url_invalid", f"no host in URL {current!r}")
        if parts.username or parts.password:
            raise FetchError("url_invalid", "URLs with credentials are refused")
        if not policy.host_allowed(host):
            raise FetchError("url_host_refused", f"host {host!r} is not on the allow-list")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError("url_invalid", f"bad port in {current!r}") from exc
        try:
            addresses = policy.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError("url_unresolvable", f"cannot resolve {host!r}: {exc}") from exc
        if not addresses:
            raise FetchError("url_unresolvable", f"{host!r} has no address")
        for address in addresses:
            refusal = address_refusal(address, policy.allowed_networks)
            if refusal is not None:
                raise FetchError("url_address_refused", f"{host!r} resolves to a {refusal}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("url_timeout", f"fetching {url!r} took over {policy.timeout_seconds}s")
        timeout = urllib3.Timeout(connect=min(remaining, 3.0), read=remaining)
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                addresses[0],
                port,
                timeout=timeout,
                retries=False,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
            )
        else:
            pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            response = pool.urlopen(
                "GET",
                path,
                headers={
                    "Host": parts.netloc.rsplit("@", 1)[-1],
                    "User-Agent": "fakeguard-image-fetch/0.1",
                    "Accept": "image/*",
                },
                redirect=False,
                preload_content=False,
                retries=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError("url_timeout", f"timed out fetching {current!r}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError("url_unreachable", f"cannot fetch {current!r}: {exc}") from exc
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise FetchError(
                        "url_bad_response", f"redirect without Location from {current!r}"
                    )
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise FetchError("url_bad_response", f"{current!r} answered HTTP {response.status}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(
                    "url_too_large",
                    f"{current!r} is {int(declared):,} bytes; the cap is {policy.max_bytes:,}",
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.stream(64 * 1024):
                size += len(chunk)
                if size > policy.max_bytes:
                    raise FetchError(
                        "url_too_large", f"{current!r} is over the {policy.max_bytes:,}-byte cap"
                    )
                if time.monotonic() > deadline:
                    raise FetchError(
                        "url_timeout", f"fetching {url!r} took over {policy.timeout_seconds}s"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError("url_timeout", f"timed out reading {current!r}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError("url_unreachable", f"error reading {current!r}: {exc}") from exc
        finally:
            response.release_conn()
            pool.close()
    raise FetchError("url_too_many_redirects", f"more than {policy.max_redirects} redirects")
