"""Request ids, JSON logs and /metrics."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.observability import JsonFormatter
from tests.api.conftest import ADMIN_KEY, Api, make_settings
from tests.support.images import product_photo

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logs() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger("fakeguard")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_request_id_is_echoed_or_generated(api: Api) -> None:
    r = api.call("GET", "/healthz", headers={"X-Request-ID": "abc-123.x"})
    assert r.headers["x-request-id"] == "abc-123.x"
    generated = api.call("GET", "/healthz").headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    for bad in ("x" * 200, "has space", "new\\nline", "<script>"):
        rid = api.call("GET", "/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert rid != bad and len(rid) == 32


def test_error_bodies_carry_the_request_id(api: Api) -> None:
    for method, path, key, kw in (
        ("GET", "/v1/brands", None, {}),
        ("GET", "/v1/brands/nope", ADMIN_KEY, {}),
        ("POST", "/v1/brands", ADMIN_KEY, {"json": {"name": 3}}),
    ):
        r = api.call(method, path, key=key, headers={"X-Request-ID": "rid-1"}, **kw)
        assert r.status_code in (401, 404, 422)
        assert r.json()["request_id"] == "rid-1" == r.headers["x-request-id"]


def test_413_and_500_are_json_with_the_request_id(
    db_url: str, tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch, logs: Collect
) -> None:
    from api.admin import service

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "list_keys", boom)
    settings = make_settings(db_url, tmp_path, models_dir=models_dir, max_request_bytes=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = client.post("/v1/brands", content=b"x" * 2000, headers={**auth, "X-Request-ID": "big"})
        assert r.status_code == 413
        assert r.json()["request_id"] == "big" == r.headers["x-request-id"]
        r = client.get("/v1/keys", headers={**auth, "X-Request-ID": "oops"})
        assert r.status_code == 500
        assert r.json() == {
            "error": "internal_error",
            "detail": "an unexpected error occurred",
            "request_id": "oops",
        }
        assert r.headers["x-request-id"] == "oops"
    mine = [line for line in logs.lines if line["request_id"] == "oops"]
    assert {line["logger"] for line in mine} == {"fakeguard.api", "fakeguard.access"}
    assert any("RuntimeError: boom" in line.get("exception", "") for line in mine)
    access = next(line for line in mine if line["logger"] == "fakeguard.access")
    assert access["status"] == 500 and access["route"] == "/v1/keys"


def test_every_log_line_of_a_request_has_its_id(api: Api, logs: Collect) -> None:
    brand = api.brand("Acme")
    files = [("files", ("x.txt", b"not an image", "image/png"))]
    api.call(
        "POST",
        f"/v1/brands/{brand['id']}/references",
        files=files,
        headers={"X-Request-ID": "up-1"},
    )
    lines = [line for line in logs.lines if line.get("path", "").endswith("/references")]
    assert lines and all(line["request_id"] == "up-1" for line in lines)
    assert all(isinstance(line["time"], str) and line["level"] for line in logs.lines)


def test_json_formatter_outside_a_request() -> None:
    record = logging.makeLogRecord({"name": "fakeguard.x", "msg": "hi %s", "args": ("there",)})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hi there" and line["request_id"] is None


def test_metrics_count_requests_verdicts_failures_and_read_live_gauges(api: Api) -> None:
    brand = api.brand("Acme")
    api.call("GET", f"/v1/brands/{brand['id']}")
    api.call("GET", "/v1/brands/missing")
    api.call("GET", "/v1/brands/missing2")
    ok = product_photo(3, 300)
    files = [("files", ("a.jpg", ok, "image/jpeg")), ("files", ("b.txt", b"text", "image/png"))]
    r = api.call("POST", f"/v1/brands/{brand['id']}/references", files=files)
    assert r.status_code == 201
    ingest = api.key("ingest")
    listing = {
        "listing_id": "M-1",
        "seller_id": "s",
        "title": "Acme replica 1:1 top quality fake",
        "images": [{"data": base64.b64encode(b"GIF89a").decode()}, {"data": "%%%"}],
    }
    assert api.call("POST", "/v1/listings/score", key=ingest, json=listing).status_code == 200
    assert api.call("POST", "/v1/listings/score", key=ingest, json=listing).json()["cached"]

    r = api.call("GET", "/metrics", key=None)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    requests = "fakeguard_http_requests_total"
    assert value(text, requests, method="GET", route="/v1/brands/{brand_id}", status="404") == 2
    assert value(text, requests, method="GET", route="/v1/brands/{brand_id}", status="200") == 1
    assert value(text, requests, method="POST", route="/v1/listings/score", status="200") == 2
    latency = "fakeguard_http_request_duration_seconds_count"
    assert value(text, latency, method="POST", route="/v1/listings/score") == 2
    scored = samples(text)
    new = [
        k
        for k, v in scored.items()
        if k[0] == "fakeguard_listings_scored_total" and ("cached", "false") in k[1] and v == 1
    ]
    cached = [
        k
        for k, v in scored.items()
        if k[0] == "fakeguard_listings_scored_total" and ("cached", "true") in k[1] and v == 1
    ]
    assert len(new) == 1 and len(cached) == 1
    decision = dict(new[0][1])["decision"]
    assert decision in ("allow", "review", "block")
    failures = "fakeguard_image_failures_total"
    assert value(text, failures, source="upload", reason="not_an_image") == 1
    assert value(text, failures, source="listing", reason="bad_image_data") == 1
    assert value(text, failures, source="listing", reason="not_an_image") == 1
    assert value(text, "fakeguard_catalog_references") == 1
    assert value(text, "fakeguard_catalog_hashes") > 10
    assert ("fakeguard_catalog_version", frozenset()) in samples(text)
    open_items = 1 if decision != "allow" else 0
    assert value(text, "fakeguard_review_queue_depth", state="pending") == open_items
    assert value(text, "fakeguard_review_queue_depth", state="claimed") == 0
    assert any(k[0] == "fakeguard_model_info" for k in scored)
    # unknown paths share one label, so probing does not grow the series without bound
    api.call("GET", "/no/such/path/1")
    api.call("GET", "/no/such/path/2")
    text = api.call("GET", "/metrics", key=None).text
    assert value(text, requests, method="GET", route="unmatched", status="404") == 2


def test_metrics_key_when_set(db_url: str, tmp_path: Path, models_dir: Path) -> None:
    settings = make_settings(db_url, tmp_path, models_dir=models_dir, metrics_key="scrape-me")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.get("/metrics")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "fakeguard_http_requests_total" in ok.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_are_summed_over_workers(tmp_path: Path, models_dir: Path) -> None:
    """`fakeguard serve --workers 2`: every scrape, whichever worker answers, sees all requests."""
    port = _free_port()
    env = {
        **os.environ,
        "FAKEGUARD_DATA_DIR": str(tmp_path / "data"),
        "FAKEGUARD_MODELS_DIR": str(models_dir),
        "FAKEGUARD_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "cli.main", "serve", "--workers", "2", "--no-default-model"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        # new connections each time, so both workers take requests
        for _ in range(30):
            httpx.get(f"{base}/readyz", timeout=5)
        seen = set()
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=5).text
            seen.add(
                value(
                    text,
                    "fakeguard_http_requests_total",
                    method="GET",
                    route="/readyz",
                    status="200",
                )
            )
        assert seen == {30.0}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_log_lines_from_the_image_thread_pool_keep_the_request_id(
    api: Api, logs: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    matcher = api.client.app.state.ctx.scoring.matcher  # type: ignore[attr-defined]

    def boom(data: bytes) -> Any:
        raise RuntimeError("verifier exploded")

    monkeypatch.setattr(matcher, "match", boom)
    body = {
        "listing_id": "T-1",
        "seller_id": "s",
        "title": "wallet",
        "images": [{"data": base64.b64encode(product_photo(2, 200)).decode()}],
    }
    r = api.call("POST", "/v1/listings/score", json=body, headers={"X-Request-ID": "pool-1"})
    assert r.status_code == 200
    failed = [line for line in logs.lines if "matching failed" in line["message"]]
    assert failed and all(line["request_id"] == "pool-1" for line in failed)
