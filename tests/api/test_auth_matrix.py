"""Every endpoint allows exactly the roles it should; a brand key never reaches another brand.

The matrix must name every /v1 route: adding a route without adding it here fails the test.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ADMIN_KEY, Api
from tests.support.images import product_photo

ADMIN, INGEST, REVIEWER, BRAND_OWN, BRAND_OTHER = (
    "admin",
    "ingest",
    "reviewer",
    "brand_own",
    "brand_other",
)
ROLES = (None, ADMIN, INGEST, REVIEWER, BRAND_OWN, BRAND_OTHER)


@dataclass
class World:
    own: dict[str, Any]  # brand A (the brand key's own)
    other: dict[str, Any]  # brand B
    own_ref: str
    other_ref: str
    keys: dict[str, str]
    victim_key: str  # a key id an admin may revoke
    item: str  # an unclaimed review item (its listing has one stored image)
    claimed_item: str  # a review item claimed by the reviewer key


def _upload(api: Api, brand_id: str, seed: int) -> str:
    r = api.call(
        "POST",
        f"/v1/brands/{brand_id}/references",
        files=[("files", (f"{seed}.jpg", product_photo(seed, 160), "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    ref_id: str = r.json()["references"][0]["id"]
    return ref_id


def make_world(api: Api, seed: int) -> World:
    own = api.brand(f"Own {uuid.uuid4().hex[:6]}")
    other = api.brand(f"Other {uuid.uuid4().hex[:6]}")
    keys = {
        ADMIN: ADMIN_KEY,
        INGEST: api.key("ingest"),
        REVIEWER: api.key("reviewer"),
        BRAND_OWN: api.key("brand", own["id"]),
    }
    keys[BRAND_OTHER] = keys[BRAND_OWN]
    victim = api.call("POST", "/v1/keys", json={"role": "ingest"}).json()["id"]
    seen = {"listing_id": "L-seen", "seller_id": "s", "title": "wallet"}
    assert api.call("POST", "/v1/listings/score", json=seen).status_code == 200
    items = []
    for _ in range(2):  # flagged listings, so the review queue has items to act on
        flagged = {
            "listing_id": f"L-flag-{uuid.uuid4().hex[:8]}",
            "seller_id": "s",
            "title": "Replica 1:1 AAA mirror quality, top batch, same factory",
            "images": [{"data": base64.b64encode(product_photo(seed + 500, 120)).decode()}],
        }
        r = api.call("POST", "/v1/listings/score", json=flagged)
        assert r.status_code == 200 and r.json()["decision"] != "allow", r.text
        queue = api.call("GET", "/v1/review/queue", params={"limit": 500}).json()["items"]
        items.append(next(i["id"] for i in queue if i["listing_id"] == flagged["listing_id"]))
    r = api.call("POST", f"/v1/review/{items[1]}/claim", key=keys[REVIEWER])
    assert r.status_code == 200, r.text
    return World(
        own,
        other,
        _upload(api, own["id"], seed),
        _upload(api, other["id"], seed + 1),
        keys,
        victim,
        items[0],
        items[1],
    )


Request = Callable[[World, str], tuple[str, str, dict[str, Any]]]


def brand_path(w: World, role: str) -> str:
    return (w.other if role == BRAND_OTHER else w.own)["id"]


def ref_of(w: World, role: str) -> str:
    return w.other_ref if role == BRAND_OTHER else w.own_ref


LISTING = {"listing_id": "L-matrix", "seller_id": "s", "title": "wallet"}

MATRIX: dict[tuple[str, str], tuple[set[str], Request]] = {
    ("POST", "/v1/listings/score"): (
        {ADMIN, INGEST},
        lambda w, r: ("POST", "/v1/listings/score", {"json": LISTING}),
    ),
    ("POST", "/v1/listings/score-batch"): (
        {ADMIN, INGEST},
        lambda w, r: ("POST", "/v1/listings/score-batch", {"json": {"listings": [LISTING]}}),
    ),
    ("GET", "/v1/listings/{listing_id}"): (
        {ADMIN, INGEST, REVIEWER},
        lambda w, r: ("GET", "/v1/listings/L-seen", {}),
    ),
    ("POST", "/v1/keys"): (
        {ADMIN},
        lambda w, r: ("POST", "/v1/keys", {"json": {"role": "ingest"}}),
    ),
    ("GET", "/v1/keys"): ({ADMIN}, lambda w, r: ("GET", "/v1/keys", {})),
    ("DELETE", "/v1/keys/{key_id}"): (
        {ADMIN},
        lambda w, r: ("DELETE", f"/v1/keys/{w.victim_key}", {}),
    ),
    ("POST", "/v1/brands"): (
        {ADMIN},
        lambda w, r: ("POST", "/v1/brands", {"json": {"name": uuid.uuid4().hex}}),
    ),
    ("GET", "/v1/brands"): (
        {ADMIN, BRAND_OWN, BRAND_OTHER},
        lambda w, r: ("GET", "/v1/brands", {}),
    ),
    ("GET", "/v1/brands/{brand_id}"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("GET", f"/v1/brands/{brand_path(w, r)}", {}),
    ),
    ("PATCH", "/v1/brands/{brand_id}"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("PATCH", f"/v1/brands/{brand_path(w, r)}", {"json": {"aliases": ["x"]}}),
    ),
    ("DELETE", "/v1/brands/{brand_id}"): (
        {ADMIN},
        lambda w, r: ("DELETE", f"/v1/brands/{brand_path(w, r)}", {}),
    ),
    ("POST", "/v1/brands/{brand_id}/references"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: (
            "POST",
            f"/v1/brands/{brand_path(w, r)}/references",
            {"files": [("files", ("n.jpg", product_photo(99, 160), "image/jpeg"))]},
        ),
    ),
    ("GET", "/v1/brands/{brand_id}/references"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("GET", f"/v1/brands/{brand_path(w, r)}/references", {}),
    ),
    ("GET", "/v1/brands/{brand_id}/references/{reference_id}"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("GET", f"/v1/brands/{brand_path(w, r)}/references/{ref_of(w, r)}", {}),
    ),
    ("GET", "/v1/brands/{brand_id}/references/{reference_id}/image"): (
        {ADMIN, BRAND_OWN, REVIEWER},
        lambda w, r: ("GET", f"/v1/brands/{brand_path(w, r)}/references/{ref_of(w, r)}/image", {}),
    ),
    ("DELETE", "/v1/brands/{brand_id}/references/{reference_id}"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("DELETE", f"/v1/brands/{brand_path(w, r)}/references/{ref_of(w, r)}", {}),
    ),
    ("GET", "/v1/review/queue"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("GET", "/v1/review/queue", {}),
    ),
    ("POST", "/v1/review/claim-next"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("POST", "/v1/review/claim-next", {}),
    ),
    ("GET", "/v1/review/stats"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("GET", "/v1/review/stats", {}),
    ),
    ("GET", "/v1/review/{item_id}"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("GET", f"/v1/review/{w.item}", {}),
    ),
    ("POST", "/v1/review/{item_id}/claim"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("POST", f"/v1/review/{w.item}/claim", {}),
    ),
    ("POST", "/v1/review/{item_id}/release"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("POST", f"/v1/review/{w.item}/release", {}),
    ),
    ("POST", "/v1/review/{item_id}/decision"): (
        {ADMIN, REVIEWER},
        lambda w, r: (
            "POST",
            f"/v1/review/{w.claimed_item}/decision",
            {"json": {"label": "counterfeit"}},
        ),
    ),
    ("GET", "/v1/review/{item_id}/images/{index}"): (
        {ADMIN, REVIEWER},
        lambda w, r: ("GET", f"/v1/review/{w.item}/images/0", {}),
    ),
    ("GET", "/v1/brands/{brand_id}/flagged"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("GET", f"/v1/brands/{brand_path(w, r)}/flagged", {}),
    ),
    ("GET", "/v1/cases"): (
        {ADMIN, BRAND_OWN},
        lambda w, r: ("GET", f"/v1/cases?brand_id={brand_path(w, r)}", {}),
    ),
}


def test_matrix_covers_every_route(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith("/v1")
        for method in ops
    }
    assert routes == set(MATRIX), f"routes missing from the matrix: {routes - set(MATRIX)}"


@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_allows_exactly_its_roles(api: Api, route: tuple[str, str]) -> None:
    allowed, make = MATRIX[route]
    for i, role in enumerate(ROLES):
        world = make_world(api, seed=i * 10)
        method, path, kw = make(world, role or ADMIN)
        r = api.call(method, path, key=world.keys[role] if role else None, **kw)
        body = (
            r.json()
            if r.content and r.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if role is None:
            assert r.status_code == 401, (role, r.status_code, r.text)
            assert body["error"] == "unauthorized"
        elif role in allowed:
            assert r.status_code < 400, (role, r.status_code, r.text)
        elif (
            role == BRAND_OTHER
            and BRAND_OWN in allowed
            and ("{brand_id}" in route[1] or "brand_id=" in path)
        ):
            # Another brand's objects look exactly like objects that do not exist.
            assert r.status_code == 404, (role, r.status_code, r.text)
            missing = make(world, BRAND_OWN)[1].replace(world.own["id"], str(uuid.uuid4()))
            r2 = api.call(method, missing, key=world.keys[BRAND_OWN], **make(world, BRAND_OWN)[2])
            assert r2.status_code == 404 and r2.json()["error"] == body["error"]
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert body["error"] == "forbidden"


def test_brand_key_lists_only_its_own_brand(api: Api) -> None:
    world = make_world(api, 1)
    r = api.call("GET", "/v1/brands", key=world.keys[BRAND_OWN])
    assert [b["id"] for b in r.json()["brands"]] == [world.own["id"]]
    assert r.json()["total"] == 1


def test_brand_key_cannot_change_name_or_thresholds(api: Api) -> None:
    world = make_world(api, 2)
    key = world.keys[BRAND_OWN]
    for body in ({"name": "Renamed"}, {"block_threshold": 0.1}):
        r = api.call("PATCH", f"/v1/brands/{world.own['id']}", key=key, json=body)
        assert r.status_code == 422 and r.json()["error"] == "admin_only_field"


def test_bad_and_revoked_keys(api: Api) -> None:
    for header in ("Bearer nope", "Basic abc", "Bearer", "Bearer fg_x_y", "Bearer " + "a" * 5000):
        r = api.client.get("/v1/brands", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["error"] == "unauthorized"
    created = api.call("POST", "/v1/keys", json={"role": "reviewer"}).json()
    assert api.call("GET", "/v1/brands/x/references/y/image", key=created["key"]).status_code == 404
    assert api.call("DELETE", f"/v1/keys/{created['id']}").status_code == 200
    r = api.call("GET", "/v1/brands/x/references/y/image", key=created["key"])
    assert r.status_code == 401
