"""The review API: queue, claims (leases), claim-next, decisions, item details and images, the
brand view, enforcement cases (JSON/CSV, ring linking) and concurrent claim-next on PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from sqlalchemy import select, update

from store.db import make_engine, make_session_factory, session_scope
from store.tables import AuditEvent, ReviewItem
from tests.api.conftest import ADMIN_KEY, Api
from tests.support.images import product_photo

FAKE_TEXT = "1:1 replica AAA mirror quality, top batch, same factory"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def brands(api: Api) -> dict[str, dict[str, Any]]:
    """Acme: every listing naming it is flagged for review. Boom: blocked. Calm: allowed."""
    return {
        "acme": api.brand("Acme", review_threshold=0.0, block_threshold=1.0),
        "boom": api.brand("Boom", review_threshold=0.0, block_threshold=0.0),
        "calm": api.brand("Calm", review_threshold=1.0, block_threshold=1.0),
    }


def score(
    api: Api,
    listing_id: str,
    title: str,
    *,
    seller: str = "s1",
    description: str | None = None,
    images: list[bytes] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"listing_id": listing_id, "seller_id": seller, "title": title}
    if description is not None:
        body["description"] = description
    if images:
        body["images"] = [{"data": b64(i)} for i in images]
    r = api.call("POST", "/v1/listings/score", json=body)
    assert r.status_code == 200, r.text
    verdict: dict[str, Any] = r.json()
    return verdict


def queue(api: Api, key: str = ADMIN_KEY, **params: Any) -> dict[str, Any]:
    r = api.call("GET", "/v1/review/queue", key=key, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def item_of(api: Api, listing_id: str, status: str | None = None) -> dict[str, Any]:
    params = {"status": status} if status else {}
    found = [i for i in queue(api, limit=500, **params)["items"] if i["listing_id"] == listing_id]
    assert len(found) == 1, found
    return found[0]


def expire_claims(api: Api) -> None:
    engine = make_engine(api.settings.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(ReviewItem)
                .where(ReviewItem.claimed_by.is_not(None))
                .values(claim_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()


def audit_rows(api: Api, action: str) -> list[AuditEvent]:
    engine = make_engine(api.settings.db_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)).all())
    finally:
        engine.dispose()


def test_flagged_listings_enter_the_queue_and_allowed_ones_do_not(api: Api) -> None:
    b = brands(api)
    reviewer = api.key("reviewer")
    assert score(api, "R1", "Acme bag")["decision"] == "review"
    assert score(api, "B1", "Boom bag")["decision"] == "block"
    assert score(api, "A1", "Calm bag")["decision"] == "allow"
    body = queue(api, reviewer)
    assert body["total"] == 2 and body["next_offset"] is None
    by_listing = {i["listing_id"]: i for i in body["items"]}
    assert set(by_listing) == {"R1", "B1"}
    item = by_listing["R1"]
    assert item["brand_id"] == b["acme"]["id"] and item["status"] == "pending"
    assert item["title"] == "Acme bag" and item["seller_id"] == "s1"
    assert item["claimed_by"] is None and item["label"] is None
    # a retry of the same content is cached and does not add anything
    assert score(api, "R1", "Acme bag")["cached"] is True
    assert queue(api, reviewer)["total"] == 2


def test_queue_order_filters_and_paging(api: Api) -> None:
    b = brands(api)
    score(api, "Q1", "Acme wallet")
    score(api, "Q2", f"Acme wallet {FAKE_TEXT}")
    score(api, "Q3", "Boom wallet")
    score(api, "Q4", f"Boom wallet {FAKE_TEXT}")
    items = queue(api)["items"]
    keys = [(-i["score"], i["created_at"]) for i in items]
    assert keys == sorted(keys) and len(items) == 4
    assert {i["listing_id"] for i in queue(api, brand_id=b["acme"]["id"])["items"]} == {"Q1", "Q2"}
    assert {i["listing_id"] for i in queue(api, decision="block")["items"]} == {"Q3", "Q4"}
    cut = sorted(i["score"] for i in items)[2]
    assert all(i["score"] >= cut for i in queue(api, min_score=cut)["items"])
    assert queue(api, min_score=cut)["total"] == sum(i["score"] >= cut for i in items)
    page = queue(api, limit=3)
    assert page["next_offset"] == 3 and len(page["items"]) == 3
    assert queue(api, limit=3, offset=3)["items"] == items[3:]
    for bad in ({"status": "nope"}, {"min_score": 2}, {"decision": "allow"}, {"limit": 0}):
        r = api.call("GET", "/v1/review/queue", params=bad)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", bad


def test_rescore_updates_the_open_item_then_opens_a_new_one(api: Api) -> None:
    brands(api)
    v1 = score(api, "L1", "Acme shoes")
    first = item_of(api, "L1")
    assert first["verdict_id"] == v1["verdict_id"]
    v2 = score(api, "L1", "Boom shoes")
    assert queue(api)["total"] == 1
    again = item_of(api, "L1")
    assert again["id"] == first["id"] and again["verdict_id"] == v2["verdict_id"]
    assert again["decision"] == "block" and again["title"] == "Boom shoes"
    r = api.call("POST", f"/v1/review/{first['id']}/decision", json={"label": "counterfeit"})
    assert r.status_code == 200, r.text
    assert queue(api)["total"] == 0
    score(api, "L1", "Calm shoes")  # allowed: nothing opens
    assert queue(api)["total"] == 0
    score(api, "L1", "Acme shoes, new")
    third = item_of(api, "L1")
    assert third["id"] != first["id"] and third["status"] == "pending"
    assert item_of(api, "L1", status="decided")["label"] == "counterfeit"


def test_claims_are_leases_with_conflicts(api: Api) -> None:
    brands(api)
    score(api, "C1", "Acme belt")
    item = item_of(api, "C1")
    alice, bob = api.key("reviewer"), api.key("reviewer")
    r = api.call("POST", f"/v1/review/{item['id']}/claim", key=alice)
    assert r.status_code == 200, r.text
    claimed = r.json()
    assert claimed["status"] == "claimed" and claimed["claimed_by"]
    expires = datetime.fromisoformat(claimed["claim_expires_at"])
    assert timedelta(seconds=290) < expires - datetime.now(UTC) <= timedelta(seconds=300)
    r = api.call("POST", f"/v1/review/{item['id']}/claim", key=bob)
    assert r.status_code == 409 and r.json()["error"] == "already_claimed"
    assert queue(api, status="claimed")["total"] == 1 and queue(api, status="pending")["total"] == 0
    r = api.call("POST", f"/v1/review/{item['id']}/claim", key=alice)
    assert r.status_code == 200
    assert datetime.fromisoformat(r.json()["claim_expires_at"]) >= expires
    expire_claims(api)
    assert item_of(api, "C1")["status"] == "pending"
    r = api.call("POST", f"/v1/review/{item['id']}/claim", key=bob)
    assert r.status_code == 200 and r.json()["claimed_by"] != claimed["claimed_by"]
    r = api.call("POST", f"/v1/review/{uuid.uuid4()}/claim", key=bob)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_a_released_claim_is_free_at_once(api: Api) -> None:
    brands(api)
    score(api, "F1", "Acme belt")
    item = item_of(api, "F1")
    alice, bob = api.key("reviewer"), api.key("reviewer")
    assert api.call("POST", f"/v1/review/{item['id']}/claim", key=alice).status_code == 200
    # bob holds nothing: releasing changes nothing, alice keeps it
    r = api.call("POST", f"/v1/review/{item['id']}/release", key=bob)
    assert r.status_code == 200 and r.json()["status"] == "claimed"
    r = api.call("POST", f"/v1/review/{item['id']}/release", key=alice)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["claimed_by"] is None
    r = api.call("POST", "/v1/review/claim-next", key=bob)
    assert r.status_code == 200 and r.json()["id"] == item["id"]
    r = api.call("POST", f"/v1/review/{uuid.uuid4()}/release", key=bob)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_claim_next_takes_the_riskiest_and_204_when_empty(api: Api) -> None:
    b = brands(api)
    reviewer = api.key("reviewer")
    r = api.call("POST", "/v1/review/claim-next", key=reviewer)
    assert r.status_code == 204 and r.content == b""
    score(api, "N1", "Acme cap")
    score(api, "N2", f"Acme cap {FAKE_TEXT}")
    score(api, "N3", "Boom cap")
    order = [i["id"] for i in queue(api)["items"]]
    r = api.call(
        "POST", "/v1/review/claim-next", key=reviewer, params={"brand_id": b["boom"]["id"]}
    )
    assert r.status_code == 200 and r.json()["listing_id"] == "N3"
    got = [api.call("POST", "/v1/review/claim-next", key=reviewer) for _ in range(3)]
    assert [g.status_code for g in got] == [200, 200, 204]
    assert [g.json()["id"] for g in got[:2]] == [i for i in order if i != r.json()["id"]]


def test_decisions_need_the_claim_and_keep_history(api: Api) -> None:
    b = brands(api)
    score(api, "D1", "Acme scarf")
    item = item_of(api, "D1")
    path = f"/v1/review/{item['id']}/decision"
    alice, bob = api.key("reviewer"), api.key("reviewer")
    r = api.call("POST", path, key=alice, json={"label": "counterfeit"})
    assert r.status_code == 409 and r.json()["error"] == "claim_required"
    assert api.call("POST", f"/v1/review/{item['id']}/claim", key=alice).status_code == 200
    r = api.call("POST", path, key=bob, json={"label": "genuine"})
    assert r.status_code == 409 and r.json()["error"] == "already_claimed"
    stale = {"label": "genuine", "verdict_id": str(uuid.uuid4())}
    r = api.call("POST", path, key=alice, json=stale)
    assert r.status_code == 409 and r.json()["error"] == "item_changed"
    for bad in ({"label": "maybe"}, {"label": "genuine", "reason_codes": ["x"] * 21}, {}):
        r = api.call("POST", path, key=alice, json=bad)
        assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = api.call(
        "POST",
        path,
        key=alice,
        json={
            "label": "unsure",
            "note": "logo looks off",
            "reason_codes": ["logo"],
            "verdict_id": item["verdict_id"],
        },
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["status"] == "decided" and decided["label"] == "unsure"
    assert decided["claimed_by"] is None
    # the claim is released: revising needs a new claim (or an admin)
    r = api.call("POST", path, key=alice, json={"label": "counterfeit"})
    assert r.status_code == 409 and r.json()["error"] == "claim_required"
    r = api.call("POST", path, json={"label": "counterfeit", "reason_codes": ["price"]})
    assert r.status_code == 200 and r.json()["label"] == "counterfeit"
    detail = api.call("GET", f"/v1/review/{item['id']}", key=bob).json()
    assert detail["label"] == "counterfeit" and detail["status"] == "decided"
    history = [(d["label"], d["previous_label"]) for d in detail["decisions"]]
    assert history == [("unsure", None), ("counterfeit", "unsure")]
    assert detail["decisions"][0]["note"] == "logo looks off"
    assert detail["decisions"][0]["verdict_id"] == item["verdict_id"]
    events = audit_rows(api, "review.decision")
    assert [(e.detail["label"], e.detail["previous_label"]) for e in events] == history
    assert all(e.object_id == item["id"] and e.brand_id == b["acme"]["id"] for e in events)
    assert events[0].note == "logo looks off"
    r = api.call("POST", f"/v1/review/{uuid.uuid4()}/decision", json={"label": "genuine"})
    assert r.status_code == 404


def test_item_detail_has_what_a_reviewer_needs(api: Api) -> None:
    brand = api.brand(
        "Acme",
        review_threshold=0.0,
        block_threshold=1.0,
        authorized_sellers=["acme-store"],
        reference_price={"amount": 150, "currency": "USD"},
    )
    photo = product_photo(5, 600)
    r = api.call(
        "POST",
        f"/v1/brands/{brand['id']}/references",
        files=[("files", ("ref.jpg", photo, "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    ref_id = r.json()["references"][0]["id"]
    score(api, "I1", "Acme sneakers", description="fresh", images=[photo])
    item = item_of(api, "I1")
    reviewer = api.key("reviewer")
    r = api.call("GET", f"/v1/review/{item['id']}", key=reviewer)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["listing"]["title"] == "Acme sneakers" and d["listing"]["description"] == "fresh"
    image = d["listing"]["images"][0]
    assert image["sha256"] and image["hashes"] and image["format"] == "JPEG"
    assert image["image_url"] == f"/v1/review/{item['id']}/images/0"
    match = d["verdict"]["image_matches"][0]
    assert match["reference_id"] == ref_id
    assert match["image_url"] == f"/v1/brands/{brand['id']}/references/{ref_id}/image"
    assert api.call("GET", match["image_url"], key=reviewer).status_code == 200
    assert d["verdict"]["reasons"] and d["verdict"]["score"] == item["score"]
    assert d["brand"]["name"] == "Acme" and d["brand"]["seller_authorised"] is False
    assert d["brand"]["reference_price"] == {"amount": 150.0, "currency": "USD"}
    assert d["decisions"] == []
    r = api.call("GET", image["image_url"], key=reviewer)
    assert r.status_code == 200 and r.content == photo
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    for bad in (f"/v1/review/{item['id']}/images/3", f"/v1/review/{uuid.uuid4()}/images/0"):
        r = api.call("GET", bad, key=reviewer)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api.call("GET", f"/v1/review/{item['id']}/images/-1", key=reviewer)
    assert r.status_code == 422
    assert api.call("GET", f"/v1/review/{uuid.uuid4()}", key=reviewer).status_code == 404


def test_brand_sees_only_its_own_flagged_listings(api: Api) -> None:
    b = brands(api)
    score(api, "F1", "Acme hat")
    score(api, "F2", "Boom hat")
    acme_key = api.key("brand", b["acme"]["id"])
    r = api.call("GET", f"/v1/brands/{b['acme']['id']}/flagged", key=acme_key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["listing_id"] for i in body["items"]] == ["F1"] and body["total"] == 1
    assert body["items"][0]["outcome"] is None and "claimed_by" not in body["items"][0]
    r = api.call("GET", f"/v1/brands/{b['boom']['id']}/flagged", key=acme_key)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api.call("GET", f"/v1/brands/{uuid.uuid4()}/flagged", key=acme_key)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    item = item_of(api, "F1")
    api.call("POST", f"/v1/review/{item['id']}/decision", json={"label": "counterfeit"})
    r = api.call("GET", f"/v1/brands/{b['acme']['id']}/flagged", key=acme_key)
    assert r.json()["items"][0]["outcome"] == "counterfeit"
    assert r.json()["items"][0]["status"] == "decided"
    r = api.call(
        "GET", f"/v1/brands/{b['acme']['id']}/flagged", key=acme_key, params={"status": "pending"}
    )
    assert r.json()["total"] == 0
    r = api.call("GET", f"/v1/brands/{b['boom']['id']}/flagged")  # admin: any brand
    assert [i["listing_id"] for i in r.json()["items"]] == ["F2"]


def _near_duplicate(photo: bytes) -> bytes:
    out = io.BytesIO()
    img = Image.open(io.BytesIO(photo))
    img.resize((img.width - 12, img.height - 12)).save(out, "JPEG", quality=70)
    return out.getvalue()


def test_cases_link_sellers_into_rings(api: Api) -> None:
    b = brands(api)
    photo = product_photo(21, 500)
    copy = _near_duplicate(photo)
    assert copy != photo
    long_text = "Acme travel backpack, waterproof, 30 litres, ships from Shenzhen warehouse"
    score(api, "K1", "Acme bag one", seller="ring-a", images=[photo])
    score(api, "K2", "Acme bag two", seller="ring-b", images=[copy])
    score(api, "K3", long_text, seller="ring-c")
    score(api, "K4", long_text.upper() + "!!", seller="ring-d")
    score(api, "K5", "Acme wallet", seller="loner", images=[product_photo(99, 500)])
    score(api, "K6", "Acme belt", seller="loner")
    score(api, "K7", "Acme cap", seller="cleared")
    score(api, "K8", "Boom cap", seller="other-brand")
    for listing_id in ("K1", "K2", "K3", "K4", "K5", "K6", "K8"):
        item = item_of(api, listing_id)
        r = api.call("POST", f"/v1/review/{item['id']}/decision", json={"label": "counterfeit"})
        assert r.status_code == 200, r.text
    cleared = item_of(api, "K7")
    api.call("POST", f"/v1/review/{cleared['id']}/decision", json={"label": "genuine"})

    acme_key = api.key("brand", b["acme"]["id"])
    r = api.call("GET", "/v1/cases", key=acme_key, params={"brand_id": b["acme"]["id"]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["listings_considered"] == 6 and report["truncated"] is False
    assert report["link_distance"] == 6 and report["listings_cap"] == 5000
    cases = {tuple(c["sellers"]): c for c in report["cases"]}
    assert set(cases) == {("ring-a", "ring-b"), ("ring-c", "ring-d"), ("loner",)}
    image_case = cases[("ring-a", "ring-b")]
    assert [(lk["a"], lk["b"], lk["kind"]) for lk in image_case["links"]] == [("K1", "K2", "image")]
    evidence = image_case["links"][0]["evidence"]
    assert evidence["distance"] <= 6 and evidence["sellers"] == ["ring-a", "ring-b"]
    assert evidence["sha256_a"] != evidence["sha256_b"]
    text_case = cases[("ring-c", "ring-d")]
    assert [lk["kind"] for lk in text_case["links"]] == ["text"]
    assert sorted(x["listing_id"] for x in cases[("loner",)]["listings"]) == ["K5", "K6"]
    listing = next(x for x in image_case["listings"] if x["listing_id"] == "K1")
    assert listing["seller_id"] == "ring-a" and listing["images"][0]["hashes"]
    assert listing["images"][0]["sha256"] and listing["verdict_id"] and listing["reasons"]
    assert [d["label"] for d in listing["decisions"]] == ["counterfeit"]
    assert listing["confirmed_at"]
    # a brand key defaults to its own brand; another brand's cases are 404
    assert api.call("GET", "/v1/cases", key=acme_key).json()["listings_considered"] == 6
    r = api.call("GET", "/v1/cases", key=acme_key, params={"brand_id": b["boom"]["id"]})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    everything = api.call("GET", "/v1/cases").json()  # admin, every brand
    assert everything["listings_considered"] == 7
    page = api.call("GET", "/v1/cases", key=acme_key, params={"limit": 1, "offset": 1}).json()
    assert len(page["cases"]) == 1 and page["total"] == 3 and page["next_offset"] == 2

    r = api.call("GET", "/v1/cases", key=acme_key, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["listing_id"] for row in rows) == ["K1", "K2", "K3", "K4", "K5", "K6"]
    case_of = {row["listing_id"]: row["case_id"] for row in rows}
    assert case_of["K1"] == case_of["K2"] == image_case["case_id"]
    assert case_of["K3"] == case_of["K4"] != case_of["K1"]
    k1 = next(row for row in rows if row["listing_id"] == "K1")
    assert k1["seller_id"] == "ring-a" and k1["latest_label"] == "counterfeit"
    assert k1["image_sha256"] == listing["images"][0]["sha256"] and "0:orig:" in k1["image_hashes"]
    r = api.call("GET", "/v1/cases", key=acme_key, params={"format": "xml"})
    assert r.status_code == 422


def test_csv_cells_cannot_become_formulas(api: Api) -> None:
    api.brand("Acme", review_threshold=0.0, block_threshold=1.0)
    score(api, "X1", "=HYPERLINK(1) Acme", seller="@evil")
    api.call(
        "POST", f"/v1/review/{item_of(api, 'X1')['id']}/decision", json={"label": "counterfeit"}
    )
    rows = list(csv.DictReader(io.StringIO(api.call("GET", "/v1/cases?format=csv").text)))
    assert rows[0]["title"].startswith("'=") and rows[0]["seller_id"] == "'@evil"


def test_concurrent_claim_next_over_http(api: Api) -> None:
    """N reviewers hammer claim-next through the API at once: each item goes to exactly one."""
    if not api.settings.db_url.startswith("postgresql"):
        return  # SQLite serialises writers; the store test covers the logic on both backends
    api.brand("Acme", review_threshold=0.0, block_threshold=1.0)
    m, n = 30, 6
    batch = [{"listing_id": f"P{i}", "seller_id": "s", "title": f"Acme item {i}"} for i in range(m)]
    assert api.call("POST", "/v1/listings/score-batch", json={"listings": batch}).status_code == 200
    assert queue(api)["total"] == m
    keys = [api.key("reviewer") for _ in range(n)]
    claims: list[tuple[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def worker(k: int) -> None:
        start.wait()
        while True:
            r = api.call("POST", "/v1/review/claim-next", key=keys[k])
            if r.status_code == 204:
                return
            if r.status_code != 200:
                failures.append(r.text)
                return
            with lock:
                claims.append((r.json()["id"], k))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    per_item = Counter(i for i, _ in claims)
    assert len(per_item) == m and max(per_item.values()) == 1
    assert len({k for _, k in claims}) > 1  # the reviewers really did share the queue
    assert queue(api, status="claimed")["total"] == m
    assert queue(api, status="pending")["total"] == 0


def test_item_detail_judges_the_seller_as_the_scorer_does(api: Api) -> None:
    """Seller ids are compared trimmed and case-folded by the scorer; the reviewer's view of
    the same listing must say the same (it compared them exactly)."""
    api.brand("Acme", review_threshold=0.0, block_threshold=1.0, authorized_sellers=["Acme-Store"])
    verdict = score(api, "A1", "Acme sneakers", seller=" acme-store")
    assert "authorised_seller" in {r["signal"] for r in verdict["reasons"]}
    item = item_of(api, "A1")
    d = api.call("GET", f"/v1/review/{item['id']}", key=api.key("reviewer")).json()
    assert d["brand"]["seller_authorised"] is True
    score(api, "A2", "Acme sneakers", seller="acme-store-outlet")
    other = item_of(api, "A2")
    d = api.call("GET", f"/v1/review/{other['id']}", key=api.key("reviewer")).json()
    assert d["brand"]["seller_authorised"] is False


def test_item_detail_shows_edits_made_after_the_flag(api: Api) -> None:
    """An edit that scores allow leaves the open item as flagged; the reviewer is told the
    listing changed since, with each later version's title and verdict."""
    brands(api)
    score(api, "E1", "Acme shoes")  # flagged (Acme: every listing naming it)
    item = item_of(api, "E1")
    reviewer = api.key("reviewer")
    d = api.call("GET", f"/v1/review/{item['id']}", key=reviewer).json()
    assert d["later_versions"] == []
    later = score(api, "E1", "Calm shoes")  # the same listing, edited: allowed
    assert later["decision"] == "allow"
    assert item_of(api, "E1")["id"] == item["id"]
    d = api.call("GET", f"/v1/review/{item['id']}", key=reviewer).json()
    assert d["listing"]["title"] == "Acme shoes"  # the flagged version is what is judged
    assert [(v["title"], v["decision"]) for v in d["later_versions"]] == [("Calm shoes", "allow")]
    assert d["later_versions"][0]["score"] == later["score"]
    score(api, "E1", "Calm shoes, size 42")
    d = api.call("GET", f"/v1/review/{item['id']}", key=reviewer).json()
    assert [v["title"] for v in d["later_versions"]] == ["Calm shoes", "Calm shoes, size 42"]
