"""Text with a NUL character: PostgreSQL cannot store it, SQLite can; both answer 422, nothing is
stored, and the rest of the service is unaffected."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api


def _listing(**fields: Any) -> dict[str, Any]:
    return {"listing_id": "N1", "seller_id": "s1", "title": "Plain wallet", **fields}


@pytest.mark.parametrize(
    "fields, where",
    [
        ({"title": "Wallet\x00 replica"}, "title"),
        ({"description": "ok", "brand": "Ni\x00ke"}, "brand"),
        ({"seller_id": "s\x001"}, "seller_id"),
    ],
)
def test_single_listing_with_nul_is_422_and_not_stored(
    api: Api, fields: dict[str, Any], where: str
) -> None:
    ingest = api.key("ingest")
    r = api.call("POST", "/v1/listings/score", key=ingest, json=_listing(**fields))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert "NUL" in body["detail"] and where in body["detail"]
    assert api.call("GET", "/v1/listings/N1", key=ingest).status_code == 404
    ok = api.call("POST", "/v1/listings/score", key=ingest, json=_listing())
    assert ok.status_code == 200, ok.text


def test_batch_item_with_nul_gets_its_own_error_naming_the_field(api: Api) -> None:
    ingest = api.key("ingest")
    body = {"listings": [_listing(), _listing(listing_id="N2", title="bad\x00")]}
    r = api.call("POST", "/v1/listings/score-batch", key=ingest, json=body)
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["listing_id"] == "N1" and first["decision"] in ("allow", "review", "block")
    assert second["error"] == "validation_error" and second["index"] == 1
    assert second["listing_id"] == "N2"
    assert "NUL" in second["detail"] and "title" in second["detail"], second
    assert api.call("GET", "/v1/listings/N1", key=ingest).status_code == 200
    assert api.call("GET", "/v1/listings/N2", key=ingest).status_code == 404


def test_other_bodies_with_nul_are_422(api: Api) -> None:
    r = api.call("POST", "/v1/brands", json={"name": "Acme\x00"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
    r = api.call("POST", "/v1/keys", json={"role": "ingest", "name": "x\x00"})
    assert r.status_code == 422, r.text
    brand = api.brand("Acme")
    r = api.call("PATCH", f"/v1/brands/{brand['id']}", json={"aliases": ["A\x00"]})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/listings/N%00",
        "/v1/review/queue?brand_id=b%00",
        "/v1/brands/x%00",
        "/v1/cases?brand_id=x%00",
    ],
)
def test_nul_in_paths_and_queries_is_a_4xx(api: Api, path: str) -> None:
    r = api.call("GET", path)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]
