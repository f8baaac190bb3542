from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.api.conftest import Api
from tests.support.images import flat_image, png_bomb, product_photo


def upload(
    api: Api, brand_id: str, files: list[tuple[str, bytes]], key: str | None = None, **form: str
):
    from tests.api.conftest import ADMIN_KEY

    return api.call(
        "POST",
        f"/v1/brands/{brand_id}/references",
        key=key or ADMIN_KEY,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=form,
    )


def test_create_get_update_delete_brand(api: Api) -> None:
    brand = api.brand(
        "Nike",
        aliases=["耐克", "Nike Inc"],
        authorized_sellers=["seller-1"],
        reference_price={"amount": 120, "currency": "usd"},
    )
    assert brand["reference_price"] == {"amount": 120.0, "currency": "USD"}
    assert brand["aliases"] == ["耐克", "Nike Inc"]
    got = api.call("GET", f"/v1/brands/{brand['id']}").json()
    assert got["name"] == "Nike"
    r = api.call(
        "PATCH",
        f"/v1/brands/{brand['id']}",
        json={"authorized_sellers": ["s1", "s2", "s1"], "reference_price": None},
    )
    assert r.status_code == 200, r.text
    assert r.json()["authorized_sellers"] == ["s1", "s2"]
    assert r.json()["reference_price"] is None
    assert api.call("DELETE", f"/v1/brands/{brand['id']}").status_code == 204
    r = api.call("GET", f"/v1/brands/{brand['id']}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_brand_names_unique_case_insensitively(api: Api) -> None:
    api.brand("Nike")
    r = api.call("POST", "/v1/brands", json={"name": "  NIKE "})
    assert r.status_code == 409
    assert r.json()["error"] == "brand_exists"
    other = api.brand("Adidas")
    r = api.call("PATCH", f"/v1/brands/{other['id']}", json={"name": "nike"})
    assert r.status_code == 409


def test_malformed_payloads_are_422_with_one_shape(api: Api) -> None:
    for body in (
        {},
        {"name": ""},
        {"name": "X", "reference_price": {"amount": -1, "currency": "USD"}},
        {"name": "X", "reference_price": {"amount": 1, "currency": "dollars"}},
        {"name": "X", "unknown": 1},
    ):
        r = api.call("POST", "/v1/brands", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"] == "validation_error"
        assert r.json()["detail"]
    # a body that is not JSON at all is the documented 400, as undecodable UTF-8 is
    r = api.call(
        "POST", "/v1/brands", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "bad_request" and "not valid JSON" in r.json()["detail"]


def test_thresholds_must_be_ordered(api: Api) -> None:
    r = api.call(
        "POST", "/v1/brands", json={"name": "X", "review_threshold": 0.9, "block_threshold": 0.5}
    )
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_thresholds"


def test_brand_list_is_paginated(api: Api) -> None:
    for i in range(5):
        api.brand(f"Brand {i}")
    page1 = api.call("GET", "/v1/brands?limit=2").json()
    assert [b["name"] for b in page1["brands"]] == ["Brand 0", "Brand 1"]
    assert page1["total"] == 5 and page1["next_offset"] == 2
    last = api.call("GET", "/v1/brands?limit=2&offset=4").json()
    assert len(last["brands"]) == 1 and last["next_offset"] is None
    assert api.call("GET", "/v1/brands?limit=0").status_code == 422


def test_upload_dozen_list_delete(api: Api) -> None:
    brand = api.brand("Nike")
    files = [(f"shoe{i}.jpg", product_photo(i)) for i in range(12)]
    r = upload(api, brand["id"], files, product="Air Max", sku="AM-1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["errors"] == []
    refs = body["references"]
    assert len(refs) == 12
    assert all(x["status"] == "created" and x["product"] == "Air Max" for x in refs)
    assert refs[0]["hashes"]["count"] > 10  # variants stored for robustness
    listing = api.call("GET", f"/v1/brands/{brand['id']}/references?limit=5").json()
    assert listing["total"] == 12 and len(listing["references"]) == 5
    # the original bytes are kept and served back
    img = api.call("GET", refs[3]["image_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert img.content == files[3][1]
    r = api.call("DELETE", f"/v1/brands/{brand['id']}/references/{refs[0]['id']}")
    assert r.status_code == 204
    assert api.call("GET", f"/v1/brands/{brand['id']}/references").json()["total"] == 11
    assert (
        api.call("DELETE", f"/v1/brands/{brand['id']}/references/{refs[0]['id']}").status_code
        == 404
    )


def test_same_image_twice_returns_existing(api: Api) -> None:
    brand = api.brand("Nike")
    data = product_photo(1)
    first = upload(api, brand["id"], [("a.jpg", data)]).json()["references"][0]
    again = upload(api, brand["id"], [("b.jpg", data), ("c.jpg", data)]).json()["references"]
    assert [x["id"] for x in again] == [first["id"], first["id"]]
    assert {x["status"] for x in again} == {"existing"}
    assert api.call("GET", f"/v1/brands/{brand['id']}/references").json()["total"] == 1
    # the same bytes in another brand's catalog are that brand's own reference
    other = api.brand("Adidas")
    r = upload(api, other["id"], [("a.jpg", data)]).json()["references"][0]
    assert r["status"] == "created" and r["id"] != first["id"]


def test_bad_files_reported_per_file_good_ones_kept(api: Api) -> None:
    brand = api.brand("Nike")
    good = product_photo(7)
    truncated = product_photo(8)[:2000]
    r = upload(
        api,
        brand["id"],
        [
            ("notes.txt", b"hello, I am not an image"),
            ("good.jpg", good),
            ("cut.jpg", truncated),
            ("bomb.png", png_bomb()),
            ("flat.png", flat_image()),
            ("empty.jpg", b""),
        ],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert [x["filename"] for x in body["references"]] == ["good.jpg"]
    errors = {e["filename"]: e for e in body["errors"]}
    assert errors["notes.txt"]["error"] == "not_an_image"
    assert errors["cut.jpg"]["error"] == "truncated"
    assert errors["bomb.png"]["error"] == "too_many_pixels"
    assert "900,000,000 pixels" in errors["bomb.png"]["detail"]
    assert errors["flat.png"]["error"] == "too_flat"
    assert errors["empty.jpg"]["error"] == "not_an_image"
    assert [e["index"] for e in body["errors"]] == [0, 2, 3, 4, 5]


def test_all_bad_files_is_422_with_per_file_errors(api: Api) -> None:
    brand = api.brand("Nike")
    r = upload(api, brand["id"], [("a.txt", b"text"), ("b.html", b"<html></html>")])
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "no_valid_images"
    assert len(body["errors"]) == 2
    assert api.call("GET", f"/v1/brands/{brand['id']}/references").json()["total"] == 0


def test_byte_cap(db_url: str, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import make_settings

    settings = make_settings(db_url, tmp_path, max_image_bytes=50_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        small_api = Api(client, settings)
        brand = small_api.brand("Nike")
        big = product_photo(3, size=1200)
        assert len(big) > 50_000
        r = upload(small_api, brand["id"], [("big.jpg", big), ("ok.jpg", product_photo(4, 150))])
        assert r.status_code == 201
        assert r.json()["errors"][0]["error"] == "file_too_large"


def test_request_body_cap_is_413(db_url: str, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import make_settings

    settings = make_settings(db_url, tmp_path, max_request_bytes=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.post(
            "/v1/brands", content=b"x" * 20_000, headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_other_formats_accepted(api: Api, fmt: str) -> None:
    brand = api.brand("Nike")
    img = Image.open(io.BytesIO(product_photo(11)))
    out = io.BytesIO()
    img.save(out, format=fmt)
    r = upload(api, brand["id"], [(f"x.{fmt.lower()}", out.getvalue())])
    assert r.status_code == 201, r.text
    assert r.json()["references"][0]["format"] == fmt


def test_upload_without_files_is_422(api: Api) -> None:
    brand = api.brand("Nike")
    r = api.call("POST", f"/v1/brands/{brand['id']}/references", data={"product": "x"})
    assert r.status_code == 422
    assert r.json()["error"] == "validation_error"


def test_audit_trail_records_changes(api: Api) -> None:
    from sqlalchemy import select

    from store.db import make_engine
    from store.tables import AuditEvent

    brand = api.brand("Nike")
    upload(api, brand["id"], [("a.jpg", product_photo(1))])
    engine = make_engine(api.settings.db_url)
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(select(AuditEvent.action).order_by(AuditEvent.id))]
    engine.dispose()
    assert actions == ["brand.create", "reference.create"]


def test_timestamps_are_utc_aware(api: Api) -> None:
    brand = api.brand("Nike")
    assert brand["created_at"].endswith(("Z", "+00:00"))
    got = api.call("GET", f"/v1/brands/{brand['id']}").json()
    assert got["created_at"].endswith(("Z", "+00:00"))
