"""The scoring endpoints: verdicts, reasons, images, idempotency, history, batches, limits."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image, ImageOps

from tests.api.conftest import Api
from tests.support.images import product_photo


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def listing(listing_id: str = "L1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "listing_id": listing_id,
        "seller_id": "seller-9",
        "title": "Leather wallet, brown",
        "description": "Handmade, no brand.",
        "price": {"amount": 25, "currency": "USD"},
    }
    body.update(fields)
    return body


def setup_brand(api: Api, seed: int = 5) -> tuple[dict[str, Any], bytes, str]:
    brand = api.brand(
        "Nike",
        authorized_sellers=["nike-official"],
        reference_price={"amount": 150, "currency": "USD"},
    )
    photo = product_photo(seed, 800)
    r = api.call(
        "POST",
        f"/v1/brands/{brand['id']}/references",
        files=[("files", ("ref.jpg", photo, "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    return brand, photo, r.json()["references"][0]["id"]


def score(api: Api, body: dict[str, Any], key: str | None = None) -> Any:
    from tests.api.conftest import ADMIN_KEY

    return api.call("POST", "/v1/listings/score", key=key or ADMIN_KEY, json=body)


def test_text_only_listing_is_scored_and_kept(api: Api) -> None:
    ingest = api.key("ingest")
    r = score(api, listing(), ingest)
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["listing_id"] == "L1" and 0 <= v["score"] <= 1
    assert v["decision"] in ("allow", "review", "block")
    assert v["reasons"][0]["signal"] == "text"
    assert v["model_version"].startswith("text:")
    assert not v["cached"]
    hist = api.call("GET", "/v1/listings/L1", key=ingest).json()
    assert [h["verdict"]["verdict_id"] for h in hist["versions"]] == [v["verdict_id"]]


def test_counterfeit_text_scores_higher_than_genuine(api: Api) -> None:
    fake = score(
        api,
        listing(
            "F1",
            title="Replica Nike Air Max 1:1 AAA mirror quality",
            description="top batch, same factory, DM on whatsapp",
        ),
    ).json()
    real = score(
        api,
        listing(
            "G1",
            title="Nike Air Max, authentic, with receipt",
            description="100% genuine, not a replica. Pre-owned.",
        ),
    ).json()
    assert fake["score"] > real["score"]
    assert fake["decision"] in ("review", "block")
    assert any(s["kind"] == "cue" for s in fake["spans"])


def test_retry_is_idempotent_and_edits_keep_history(api: Api) -> None:
    first = score(api, listing()).json()
    again = score(api, listing()).json()
    assert again["verdict_id"] == first["verdict_id"] and again["cached"] is True
    edited = score(api, listing(title="Leather wallet, brown, new")).json()
    assert edited["verdict_id"] != first["verdict_id"]
    hist = api.call("GET", "/v1/listings/L1").json()["versions"]
    assert [h["title"] for h in hist] == ["Leather wallet, brown", "Leather wallet, brown, new"]


def test_stolen_photo_matches_the_brand_reference(api: Api) -> None:
    brand, photo, ref_id = setup_brand(api)
    mirrored = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(photo))).save(mirrored, "JPEG", quality=80)
    body = listing(
        "S1",
        title="Running shoes sale",
        price={"amount": 300, "currency": "CNY"},
        images=[{"data": b64(mirrored.getvalue())}],
    )
    v = score(api, body).json()
    assert [m["reference_id"] for m in v["image_matches"]] == [ref_id]
    assert v["brand_id"] == brand["id"]
    signals = {r["signal"]: r for r in v["reasons"]}
    assert signals["image_match"]["contribution"] > 0
    assert "does not name it" in signals["hidden_brand"]["detail"]
    assert "CNY" in signals["price"]["detail"] and "USD" in signals["price"]["detail"]
    # the same photo from the brand's authorised seller is allowed
    ok = score(
        api,
        listing(
            "S2",
            seller_id="nike-official",
            title="Nike shoes",
            images=[{"data": b64(mirrored.getvalue())}],
        ),
    ).json()
    assert ok["decision"] == "allow"
    assert any(r["signal"] == "authorised_seller" for r in ok["reasons"])


def test_unrelated_photo_does_not_match(api: Api) -> None:
    setup_brand(api)
    v = score(api, listing("U1", images=[{"data": b64(product_photo(77, 600))}])).json()
    assert v["image_matches"] == []


def test_bad_images_do_not_fail_the_listing(api: Api) -> None:
    body = listing(
        "B1",
        images=[
            {"data": b64(product_photo(3, 400)[:3000])},
            {"data": "%%%not-base64%%%"},
            {"url": "https://images.example.com/x.jpg"},
        ],
    )
    r = score(api, body)
    assert r.status_code == 200, r.text
    codes = [
        r["evidence"]["code"] for r in r.json()["reasons"] if r["signal"] == "image_unreadable"
    ]
    assert sorted(codes) == ["bad_image_data", "truncated", "url_fetch_disabled"]


def test_malformed_listing_is_422(api: Api) -> None:
    for body in (
        {"title": "x"},
        listing(images=[{}]),
        listing(images=[{"data": "a", "url": "b"}]),
        listing(price={"amount": -3, "currency": "USD"}),
    ):
        r = score(api, body)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", body


def test_batch_keeps_order_and_reports_items(db_url: str, tmp_path: Any, models_dir: Any) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import make_settings

    settings = make_settings(db_url, tmp_path, max_images_per_listing=2, max_batch_listings=5)
    with TestClient(create_app(settings)) as client:
        small = Api(client, settings)
        img = {"data": b64(product_photo(1, 200))}
        batch = [listing("A"), listing("B", images=[img, img, img]), listing("C")]
        r = small.call("POST", "/v1/listings/score-batch", json={"listings": batch})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x.get("listing_id") for x in results] == ["A", "B", "C"]
        assert results[1]["error"] == "too_many_images" and "score" in results[0]
        r = small.call(
            "POST",
            "/v1/listings/score-batch",
            json={"listings": [listing(str(i)) for i in range(6)]},
        )
        assert r.status_code == 422 and r.json()["error"] == "batch_too_large"


def test_batch_of_100_listings_with_200kb_images_is_accepted(api: Api) -> None:
    photo = product_photo(8, 1000)
    while len(photo) < 200_000:  # pad with JPEG comment-free noise: a bigger real photo
        photo = product_photo(len(photo) % 97, 1300)
    batch = [listing(f"P{i}", images=[{"data": b64(photo)}]) for i in range(100)]
    r = api.call("POST", "/v1/listings/score-batch", json={"listings": batch})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 100
    assert all("score" in x for x in r.json()["results"])


def test_an_image_that_breaks_the_engine_fails_only_itself(api: Api, monkeypatch: Any) -> None:
    matcher = api.client.app.state.ctx.scoring.matcher  # type: ignore[attr-defined]

    def boom(data: bytes) -> Any:
        raise RuntimeError("verifier exploded")

    monkeypatch.setattr(matcher, "match", boom)
    batch = [listing("E1", images=[{"data": b64(product_photo(2, 300))}]), listing("E2")]
    r = api.call("POST", "/v1/listings/score-batch", json={"listings": batch})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    codes = [x["evidence"]["code"] for x in first["reasons"] if x["signal"] == "image_unreadable"]
    assert codes == ["image_processing_failed"] and "score" in second


def test_concurrent_scoring_does_not_trip_the_database_lock(api: Api) -> None:
    """On SQLite, a read-then-write unit of work used to fail at once ("database is locked")
    when another connection committed in between; every request here must succeed."""
    from concurrent.futures import ThreadPoolExecutor

    from api.ingest import service
    from api.ingest.schemas import ListingIn

    api.brand("Nike")
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]

    def work(i: int) -> str:
        session = ctx.sessions()
        try:
            v = service.score_one(session, ctx, ListingIn(**listing(f"C{i}", title=f"Nike {i}")))
            session.commit()
            return v.decision
        finally:
            session.close()

    with ThreadPoolExecutor(6) as pool:
        decisions = list(pool.map(work, range(36)))
    assert len(decisions) == 36
    hist = [api.call("GET", f"/v1/listings/C{i}").status_code for i in range(36)]
    assert hist == [200] * 36


def test_base64_accepts_what_strict_binascii_accepts() -> None:
    """The fast decoder in front changes no outcome: same bytes, same refusals and wording."""
    import binascii
    import random

    from api.ingest.service import _decode_base64

    rng = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    noise = alphabet + "=\n\r \t-_.!é\x00"
    cases = ["", "=", "AA==", "AAA=", "A===", "AAAA====", "=AAA", "QR==", "AA==AA==", "ZCgT="]
    for _ in range(5000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        text = base64.b64encode(raw).decode()
        if rng.random() < 0.6:
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(noise) + text[at:]
        cases.append(text)
        cases.append("".join(rng.choice(noise) for _ in range(rng.randint(1, 10))))
    for text in cases:
        try:
            expected: bytes | str = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            expected = f"'data' is not valid base64: {exc}"
        try:
            got: bytes | str = _decode_base64(text, 1000)
        except ValueError as exc:
            got = str(exc)
        assert got == expected, text


def test_a_single_listing_stored_meanwhile_is_answered_with_the_stored_verdict(
    api: Api, monkeypatch: Any
) -> None:
    """The retry check misses (another request stored the same content after it): the write
    fails on the unique content, is undone, and the stored verdict is the answer."""
    from api.ingest import service
    from api.ingest.schemas import ListingIn
    from store.listings import ListingRepository

    first = api.call("POST", "/v1/listings/score", json=listing("M1")).json()
    monkeypatch.setattr(ListingRepository, "existing_verdicts", lambda self, keys: {})
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    session = ctx.sessions()
    try:
        again = service.score_one(session, ctx, ListingIn(**listing("M1")))
        session.commit()
    finally:
        session.close()
    assert again.cached and again.verdict_id == first["verdict_id"]
    monkeypatch.undo()
    versions = api.call("GET", "/v1/listings/M1").json()["versions"]
    assert [v["verdict"]["verdict_id"] for v in versions] == [first["verdict_id"]]


def test_a_brand_change_stamped_earlier_than_the_latest_still_reaches_the_scorer(
    api: Api,
) -> None:
    """Workers rebuild their scorer when the brands change. A change that commits after a
    later-stamped one (a slow transaction, or a replica whose clock is behind) must count too:
    here Nike adds an authorised seller, with an ``updated_at`` older than Adidas's."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from store.db import make_engine
    from store.tables import Brand

    nike = api.brand("Nike")
    adidas = api.brand("Adidas")
    engine = api.client.app.state.ctx.scoring  # type: ignore[attr-defined]
    engine.brand_refresh_seconds = 0.0
    body = listing("S1", title="Nike Air Max 90", seller_id="nike-outlet-7")
    first = score(api, body).json()
    assert "authorised_seller" not in {r["signal"] for r in first["reasons"]}
    db = make_engine(api.settings.db_url)
    with db.begin() as conn:
        latest = conn.execute(select(Brand.updated_at).where(Brand.id == adidas["id"])).scalar_one()
        conn.execute(
            update(Brand)
            .where(Brand.id == nike["id"])
            .values(authorized_sellers=["nike-outlet-7"], updated_at=latest - timedelta(hours=1))
        )
    db.dispose()
    second = score(api, {**body, "description": "edited"}).json()
    reasons = {r["signal"]: r for r in second["reasons"]}
    assert "authorised_seller" in reasons, second["reasons"]
    assert reasons["authorised_seller"]["contribution"] < 0
    assert second["score"] < first["score"]
