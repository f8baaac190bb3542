"""Regressions for what the schemathesis run (tests/api/test_fuzz.py) found, one test each."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


def _listing(**fields: Any) -> dict[str, Any]:
    return {"listing_id": "F-1", "seller_id": "s", "title": "wallet", **fields}


def test_empty_image_url_is_a_validation_error_not_a_500(api: Api) -> None:
    ingest = api.key("ingest")
    body = _listing(images=[{"url": ""}])
    r = api.call("POST", "/v1/listings/score", key=ingest, json=body)
    assert r.status_code == 422 and r.json()["error"] == "validation_error", r.text
    r = api.call("POST", "/v1/listings/score-batch", key=ingest, json={"listings": [body]})
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["error"] == "validation_error" and item["index"] == 0, item
    assert item["fields"][0]["field"].startswith("listings[0].images"), item


def test_405_allow_names_every_method_of_the_path(api: Api) -> None:
    for path, allow in (
        ("/v1/keys", "GET, POST"),
        ("/v1/brands/x", "GET, PATCH, DELETE"),
        ("/v1/brands/x/references/y", "GET, DELETE"),
    ):
        r = api.call("PUT", path)
        assert r.status_code == 405 and r.headers["allow"] == allow
        assert r.json()["error"] == "method_not_allowed"


def test_booleans_are_not_numbers(api: Api) -> None:
    r = api.call("POST", "/v1/brands", json={"name": "A", "match_distance": False})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "match_distance"
    r = api.call("POST", "/v1/brands", json={"name": "B", "review_threshold": True})
    assert r.status_code == 422
    r = api.call("POST", "/v1/brands", json={"name": "C", "match_distance": 8.0})
    assert r.status_code == 201 and r.json()["match_distance"] == 8
    doc = api.call("GET", "/openapi.json", key=None).json()
    threshold = doc["components"]["schemas"]["BrandCreate"]["properties"]["block_threshold"]
    assert {"minimum": 0, "maximum": 1, "type": "number"}.items() <= threshold["anyOf"][0].items()


def test_openapi_documents_the_errors_really_sent(api: Api) -> None:
    doc = api.call("GET", "/openapi.json", key=None).json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    post_brands = doc["paths"]["/v1/brands"]["post"]["responses"]
    ref = post_brands["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ValidationErrorBody")
    assert {"400", "413"} <= set(post_brands)
    # the unparseable body (invalid UTF-8) is the documented 400
    r = api.call(
        "POST",
        "/v1/brands",
        content=b"\xff\xfe{",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    # so is a body that is not JSON at all (FastAPI calls it a validation error at field "1")
    for body in (b"{not json", b'{"listing_id": "x",', b"[1, 2"):
        r = api.call(
            "POST",
            "/v1/listings/score",
            key=api.key("ingest"),
            content=body,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
        assert r.json()["detail"].startswith("the body is not valid JSON at character "), r.text
    # what validation enforces, the document says: money has 4 decimals, images one source
    amount = schemas["Money"]["properties"]["amount"]
    assert amount["multipleOf"] == 0.0001 and amount["exclusiveMinimum"] == 0
    assert len(schemas["ImageIn"]["oneOf"]) == 2
    files = doc["components"]["schemas"]
    upload = next(v for k, v in files.items() if k.startswith("Body_upload_references"))
    assert upload["properties"]["files"]["minItems"] == 1
