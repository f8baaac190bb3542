"""The hostile-file corpus (tests/support/hostile.py) through HTTP: reference uploads and scoring.

An upload answers 201 for files we accept and 422 ``no_valid_images`` with the file's code for
the others; scoring answers 200 and names each unusable image in an ``image_unreadable`` reason.
Never a 5xx, and every request within the corpus's time and memory bounds (memory: peak RSS
growth of this process while the request runs, Linux).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from tests.api.conftest import Api
from tests.support.hostile import CORPUS, MEMORY_BOUND_MB, TIME_BOUND_S, Hostile, peak_growth


def _timed(api: Api, method: str, path: str, **kw: Any) -> tuple[Any, float, float | None]:
    start = time.process_time()
    with peak_growth() as peak:
        r = api.call(method, path, **kw)
    return r, time.process_time() - start, peak[0] if peak else None


def _check_bounds(case: Hostile, what: str, seconds: float, peak: float | None) -> None:
    assert seconds <= TIME_BOUND_S, f"{case.name} {what}: {seconds:.2f} s"
    assert peak is None or peak <= MEMORY_BOUND_MB, f"{case.name} {what}: {peak:.0f} MB"


def test_hostile_uploads_get_a_clear_answer_within_bounds(api: Api) -> None:
    brand = api.brand("Acme")
    for case in CORPUS:
        files = [("files", (f"{case.name}.bin", case.data(), case.claimed_type))]
        r, seconds, peak = _timed(api, "POST", f"/v1/brands/{brand['id']}/references", files=files)
        _check_bounds(case, "upload", seconds, peak)
        body = r.json()
        if r.status_code == 201:
            assert case.allows("accepted"), (case.name, body)
            assert body["references"] and not body["errors"]
        else:
            assert r.status_code == 422, (case.name, r.status_code, body)
            assert body["error"] == "no_valid_images" and body["detail"]
            (err,) = body["errors"]
            assert case.allows(err["error"]), (case.name, err)
            assert err["detail"] and err["filename"] == f"{case.name}.bin"


def test_hostile_listing_images_are_image_unreadable_within_bounds(api: Api) -> None:
    ingest = api.key("ingest")
    for i, case in enumerate(CORPUS):
        body = {
            "listing_id": f"H-{i}",
            "seller_id": "s-1",
            "title": "Leather wallet, brown",
            "images": [{"data": base64.b64encode(case.data()).decode()}],
        }
        r, seconds, peak = _timed(api, "POST", "/v1/listings/score", key=ingest, json=body)
        _check_bounds(case, "scoring", seconds, peak)
        assert r.status_code == 200, (case.name, r.status_code, r.text[:300])
        unreadable = [x for x in r.json()["reasons"] if x["signal"] == "image_unreadable"]
        if unreadable:
            (reason,) = unreadable
            assert case.allows(reason["evidence"]["code"]), (case.name, reason)
            assert reason["detail"]
        else:
            assert case.allows("accepted"), case.name


def test_polyglot_is_served_back_as_the_image_it_decoded_as(api: Api) -> None:
    brand = api.brand("Acme")
    case = next(c for c in CORPUS if c.name == "polyglot_gif_html")
    files = [("files", ("page.html", case.data(), "text/html"))]
    r = api.call("POST", f"/v1/brands/{brand['id']}/references", files=files)
    assert r.status_code == 201, r.text
    ref = r.json()["references"][0]
    assert ref["content_type"] == "image/gif"
    img = api.call("GET", ref["image_url"])
    assert img.status_code == 200
    assert img.headers["content-type"] == "image/gif"
    assert img.headers["x-content-type-options"] == "nosniff"
    assert img.content == case.data()
