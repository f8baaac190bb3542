"""The database goes away while the service runs, and comes back.

The app talks to the test PostgreSQL through :class:`~tests.faults.proxy.TcpProxy`; cutting the
proxy is the database stopping (connections dropped, new ones refused), restoring it is the
database coming back. Expected: ``/readyz`` and every request that needs the database answer 503
with ``Retry-After`` in the one error shape (never a 500), nothing is reported as scored that was
not stored, and the service recovers by itself.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from api.app import create_app
from tests.api.conftest import ADMIN_KEY, make_settings
from tests.api.test_review_pages import sign_in
from tests.faults.conftest import count_rows
from tests.faults.proxy import TcpProxy
from tests.support.images import product_photo


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as p:
        yield p


@pytest.fixture
def client(pg_url: str, proxy: TcpProxy, tmp_path: Path, models_dir: Path) -> Iterator[TestClient]:
    via_proxy = make_url(pg_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    settings = make_settings(via_proxy, tmp_path, models_dir=models_dir)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ingest_key(client: TestClient) -> str:
    r = client.post("/v1/keys", json={"role": "ingest"}, headers=_headers(ADMIN_KEY))
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def _listing(n: int, image: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "listing_id": f"OUT-{n}",
        "seller_id": f"seller-{n}",
        "title": f"Replica designer bag 1:1 mirror quality #{n}",
        "price": {"amount": 40 + n, "currency": "USD"},
    }
    if image:
        body["images"] = [{"data": base64.b64encode(product_photo(900 + n, 320)).decode()}]
    return body


def assert_unavailable(r: httpx.Response) -> None:
    """503, Retry-After, and the one error shape."""
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    body = r.json()
    assert set(body) >= {"error", "detail", "request_id"}, body
    assert body["request_id"] == r.headers["X-Request-ID"]


def wait_ready(client: TestClient, timeout: float = 20.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if client.get("/readyz").status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"/readyz not 200 within {timeout} s of the database coming back")


def test_database_down_then_back(client: TestClient, proxy: TcpProxy, pg_url: str) -> None:
    key = _ingest_key(client)
    assert (
        client.post("/v1/listings/score", json=_listing(0), headers=_headers(key)).status_code
        == 200
    )

    proxy.cut()
    r = client.get("/readyz")
    assert_unavailable(r)
    assert r.json()["error"] == "not_ready" and "database" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the process is up
    before = count_rows(pg_url)
    for path, body in (
        ("/v1/listings/score", _listing(1)),
        ("/v1/listings/score-batch", {"listings": [_listing(2), _listing(3, image=False)]}),
    ):
        assert_unavailable(client.post(path, json=body, headers=_headers(key)))
    assert_unavailable(client.get("/v1/listings/OUT-0", headers=_headers(key)))
    assert count_rows(pg_url) == before

    proxy.restore()
    wait_ready(client)
    r = client.post("/v1/listings/score", json=_listing(1), headers=_headers(key))
    assert r.status_code == 200 and r.json()["cached"] is False, r.text
    again = client.post("/v1/listings/score", json=_listing(1), headers=_headers(key))
    assert again.json()["cached"] is True and again.json()["verdict_id"] == r.json()["verdict_id"]
    assert count_rows(pg_url)["verdicts"] == before["verdicts"] + 1


@contextmanager
def _cut_during_matching(client: TestClient, proxy: TcpProxy) -> Iterator[None]:
    matcher = client.app.state.ctx.scoring.matcher  # type: ignore[attr-defined]
    original = matcher.match

    def match(data: bytes) -> Any:
        proxy.cut()  # the database stops while images are being matched
        return original(data)

    matcher.match = match
    try:
        yield
    finally:
        del matcher.match  # the class's method again


@contextmanager
def _cut_before_commit(client: TestClient, proxy: TcpProxy) -> Iterator[None]:
    sessions = client.app.state.ctx.sessions  # type: ignore[attr-defined]

    def before_commit(_session: Any) -> None:
        if proxy.up:  # the rows are written in the open transaction; the COMMIT never arrives
            proxy.cut()

    event.listen(sessions, "before_commit", before_commit)
    try:
        yield
    finally:
        event.remove(sessions, "before_commit", before_commit)


CUTS: dict[str, Callable[[TestClient, TcpProxy], AbstractContextManager[None]]] = {
    "while_matching_images": _cut_during_matching,
    "before_commit": _cut_before_commit,
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_database_lost_during_scoring_stores_nothing_and_reports_nothing(
    client: TestClient, proxy: TcpProxy, pg_url: str, cut: str
) -> None:
    key = _ingest_key(client)
    batch = {"listings": [_listing(n, image=n % 2 == 0) for n in range(10, 16)]}
    before = count_rows(pg_url)
    with CUTS[cut](client, proxy):
        r = client.post("/v1/listings/score-batch", json=batch, headers=_headers(key))
    assert_unavailable(r)
    assert r.json()["error"] == "unavailable"
    assert not proxy.up
    assert_unavailable(client.get("/readyz"))
    proxy.restore()
    assert count_rows(pg_url) == before  # the 503 stored nothing: no silent half
    wait_ready(client)
    r = client.post("/v1/listings/score-batch", json=batch, headers=_headers(key))
    assert r.status_code == 200, r.text
    first = r.json()["results"]
    assert [v["cached"] for v in first] == [False] * 6  # nothing had been stored
    r = client.post("/v1/listings/score-batch", json=batch, headers=_headers(key))
    again = r.json()["results"]
    assert [v["cached"] for v in again] == [True] * 6
    assert [v["verdict_id"] for v in again] == [v["verdict_id"] for v in first]
    after = count_rows(pg_url)
    assert after["verdicts"] == before["verdicts"] + 6
    assert after["listing_versions"] == before["listing_versions"] + 6


def test_every_route_answers_503_not_500_while_the_database_is_down(
    client: TestClient, proxy: TcpProxy
) -> None:
    """Every operation of the OpenAPI document, and the review pages, with the admin key."""
    spec = client.get("/openapi.json").json()
    r = client.post("/v1/keys", json={"role": "reviewer"}, headers=_headers(ADMIN_KEY))
    sign_in(client, r.json()["key"])  # a review-page session cookie, checked per page
    proxy.cut()
    seen = []
    for path, operations in spec["paths"].items():
        concrete = path
        for name in ("brand_id", "ref_id", "reference_id", "item_id", "key_id", "listing_id"):
            concrete = concrete.replace("{" + name + "}", "x1")
        for method in operations:
            kw: dict[str, Any] = {}
            if method in ("post", "patch"):
                kw["json"] = {}
            r = client.request(method.upper(), concrete, headers=_headers(ADMIN_KEY), **kw)
            seen.append((method, path, r.status_code))
            assert r.status_code < 500 or r.status_code == 503, (method, path, r.text)
            if r.status_code == 503:
                assert_unavailable(r)
    for page in ("/review", "/review/queue", "/review/stats", "/review/items/x1"):
        r = client.get(page)
        assert r.status_code == 503, (page, r.status_code, r.text[:300])
        assert int(r.headers["Retry-After"]) > 0
    assert sum(1 for *_, status in seen if status == 503) >= len(seen) // 2, seen
    metrics = client.get("/metrics")
    assert metrics.status_code == 200  # counters still readable; the queue depth is left out


def test_database_that_stops_answering_gives_503_not_a_hang(
    client: TestClient, proxy: TcpProxy, pg_url: str
) -> None:
    """Connections to the database hang instead of failing (a host that stopped responding):
    requests still answer 503 within a bounded time, and recover."""
    key = _ingest_key(client)
    assert client.post("/v1/listings/score", json=_listing(20), headers=_headers(key)).is_success
    proxy.stall()
    outcome: dict[str, Any] = {}

    def request() -> None:
        t0 = time.monotonic()
        outcome["response"] = client.post(
            "/v1/listings/score", json=_listing(21), headers=_headers(key)
        )
        outcome["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the request hung on a database that does not answer"
    assert_unavailable(outcome["response"])
    assert outcome["seconds"] < 15
    proxy.unstall()
    wait_ready(client)
    r = client.post("/v1/listings/score", json=_listing(21), headers=_headers(key))
    assert r.status_code == 200 and r.json()["cached"] is False, r.text
