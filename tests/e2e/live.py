"""A real fakeguard server on a loopback port, and a seeded review queue, for browser tests and
the docs screenshot (``python -m tests.e2e.screenshot``)."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image, ImageDraw

from api.app import create_app
from api.settings import Settings
from store.keys import generate_key
from store.migrate import upgrade
from tests.support.images import product_photo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Live:
    url: str
    admin_key: str
    settings: Settings

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)


@contextmanager
def live_server(tmp: Path, models_dir: Path) -> Iterator[Live]:
    """Migrate a temp SQLite database and serve the real app with uvicorn in a thread."""
    db_url = f"sqlite:///{tmp / 'fakeguard.db'}"
    upgrade(db_url)
    admin = generate_key()
    settings = Settings(
        data_dir=tmp / "data",
        database_url=db_url,
        bootstrap_admin_key=admin,
        models_dir=models_dir,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the fakeguard server did not become ready")
        time.sleep(0.1)
    try:
        yield Live(url, admin, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check`` (e.g. a Playwright ``page.evaluate``: the pages' CSP forbids the string
    evaluation behind ``wait_for_function``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def doctored(photo: bytes, caption: str = "TOP 1:1 QUALITY") -> bytes:
    """A counterfeiter's copy of a brand photo: cropped, captioned, re-encoded."""
    img = Image.open(io.BytesIO(photo)).convert("RGB")
    w, h = img.size
    img = img.crop((w // 20, h // 20, w - w // 25, h - h // 25))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, img.height - 44, img.width, img.height], fill=(200, 20, 20))
    draw.text((12, img.height - 34), caption, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=70)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Seeded:
    reviewer_key: str
    brand_id: str
    reference_id: str
    item_id: str  # the flagged listing whose image matches the brand reference
    listing_id: str


def seed(live: Live, extra: bool = False, require_match: bool = True) -> Seeded:
    """A brand with a reference photo, a reviewer key, and a flagged listing whose image is a
    doctored copy of the reference (``extra``: a few more flagged listings for a fuller queue)."""
    r = live.call(
        "POST",
        "/v1/brands",
        json={
            "name": "Acme",
            "aliases": ["ACME"],
            "authorized_sellers": ["acme-official"],
            "reference_price": {"amount": 180, "currency": "USD"},
        },
    )
    assert r.status_code == 201, r.text
    brand = r.json()
    photo = product_photo(5, 600)
    r = live.call(
        "POST",
        f"/v1/brands/{brand['id']}/references",
        files=[("files", ("acme-runner.jpg", photo, "image/jpeg"))],
        data={"product": "Acme Runner 2", "sku": "AR2"},
    )
    assert r.status_code == 201, r.text
    ref_id = r.json()["references"][0]["id"]
    r = live.call("POST", "/v1/keys", json={"role": "reviewer", "name": "Dana (reviewer)"})
    assert r.status_code == 201, r.text
    reviewer = r.json()["key"]
    listing = {
        "listing_id": "MKT-40817",
        "seller_id": "luxdeals-88",
        "title": "ACME Runner 2 1:1 replica top batch - AAA mirror quality",
        "description": (
            "Same factory as the original Acme, not genuine box. 1:1 mirror quality, ships "
            "fast. Sizes 38-46. Contact us for wholesale."
        ),
        "price": {"amount": 39.9, "currency": "USD"},
        "images": [{"data": b64(doctored(photo))}],
    }
    r = live.call("POST", "/v1/listings/score", json=listing)
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert verdict["decision"] in ("review", "block"), verdict
    if require_match:
        assert any(m["reference_id"] == ref_id for m in verdict["image_matches"]), verdict
    if extra:
        for i, (title, price) in enumerate(
            [
                ("Acme runner shoes AAA replica, same factory", 45),
                ("ACME Runner 2 - super copy, best quality", 60),
                ("Acme trainers mirror quality 1:1", 30),
                ("Acme Runner 2 original, barely worn", 150),
            ]
        ):
            body = {
                "listing_id": f"MKT-4{i}233",
                "seller_id": f"seller-{i}",
                "title": title,
                "price": {"amount": price, "currency": "USD"},
            }
            assert live.call("POST", "/v1/listings/score", json=body).status_code == 200
    items = live.call("GET", "/v1/review/queue", params={"limit": 500}).json()["items"]
    item = next(i for i in items if i["listing_id"] == listing["listing_id"])
    return Seeded(reviewer, brand["id"], ref_id, item["id"], listing["listing_id"])
