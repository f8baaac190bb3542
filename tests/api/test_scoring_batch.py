"""Batches are stored as batches: a fixed number of SQL statements, duplicates and edits inside
one batch, an item the database refuses, and two requests racing for the same listing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

from tests.api.conftest import Api
from tests.api.test_scoring import listing

FAKE: dict[str, Any] = {
    "title": "Replica Nike Air Max 1:1 AAA mirror quality",
    "description": "top batch, same factory, DM on whatsapp",
    "price": {"amount": 20, "currency": "USD"},
}


def batch(api: Api, items: list[dict[str, Any]], key: str | None = None) -> list[dict[str, Any]]:
    kw = {"key": key} if key else {}
    r = api.call("POST", "/v1/listings/score-batch", json={"listings": items}, **kw)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def mixed(prefix: str, n: int, **fields: Any) -> list[dict[str, Any]]:
    """n listings, every third one a counterfeit (flagged: it enters the review queue)."""
    return [
        listing(f"{prefix}{i}", **({**FAKE, **fields} if i % 3 == 0 else fields)) for i in range(n)
    ]


@contextmanager
def counting(api: Api) -> Iterator[list[str]]:
    engine = api.client.app.state.ctx.engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_sql_statements_per_batch_do_not_grow_with_its_size(api: Api) -> None:
    """Storing a batch costs the same statements for 5 listings or 50 (no per-item queries):
    new listings, edits of stored ones (with review items to refresh) and retries."""
    api.brand("Nike")
    ingest = api.key("ingest")
    batch(api, mixed("warm", 3), ingest)  # model, brands and key caches are warm from here
    counts = {}
    for n in (5, 50):
        with counting(api) as new:
            results = batch(api, mixed(f"n{n}-", n), ingest)
        assert all("score" in r and not r["cached"] for r in results)
        assert any(r["decision"] != "allow" for r in results)
        with counting(api) as edits:
            results = batch(api, mixed(f"n{n}-", n, category="shoes"), ingest)
        assert all("score" in r and not r["cached"] for r in results)
        with counting(api) as retries:
            results = batch(api, mixed(f"n{n}-", n, category="shoes"), ingest)
        assert all(r["cached"] for r in results)
        counts[n] = (len(new), len(edits), len(retries))
    assert counts[5] == counts[50], counts
    new_count, edit_count, retry_count = counts[50]
    assert new_count <= 16 and edit_count <= 16 and retry_count <= 8, counts


def test_duplicates_and_edits_inside_one_batch(api: Api) -> None:
    reviewer = api.key("reviewer")
    first, again, edited, other = batch(
        api,
        [
            listing("D1", **FAKE),
            listing("D1", **FAKE),
            listing("D1", **{**FAKE, "title": FAKE["title"] + " v2"}),
            listing("D2"),
        ],
    )
    assert not first["cached"] and again["cached"]
    assert again["verdict_id"] == first["verdict_id"]
    assert edited["verdict_id"] != first["verdict_id"] and not edited["cached"]
    hist = api.call("GET", "/v1/listings/D1").json()["versions"]
    assert [h["verdict"]["verdict_id"] for h in hist] == [first["verdict_id"], edited["verdict_id"]]
    assert "score" in other
    # One open review item for D1, on its latest flagged version.
    assert first["decision"] != "allow" and edited["decision"] != "allow"
    queue = api.call("GET", "/v1/review/queue", key=reviewer).json()
    items = [i for i in queue["items"] if i["listing_id"] == "D1"]
    assert len(items) == 1, items
    assert items[0]["verdict_id"] == edited["verdict_id"]
    # The whole batch again: every verdict is the stored one.
    retried = batch(
        api,
        [
            listing("D1", **FAKE),
            listing("D1", **{**FAKE, "title": FAKE["title"] + " v2"}),
            listing("D2"),
        ],
    )
    assert [r["cached"] for r in retried] == [True, True, True]
    assert [r["verdict_id"] for r in retried] == [
        first["verdict_id"],
        edited["verdict_id"],
        other["verdict_id"],
    ]


def _refuse_title(api: Api, title: str) -> None:
    """A database trigger that refuses one listing title: a real database-level failure."""
    engine = api.client.app.state.ctx.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_title BEFORE INSERT ON listing_versions "
                    f"WHEN NEW.title = '{title}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_title() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.title = '{title}' THEN RAISE EXCEPTION 'refused' "
                    "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_title BEFORE INSERT ON listing_versions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_title()"
                )
            )


def test_an_item_the_database_refuses_fails_alone(api: Api) -> None:
    _refuse_title(api, "poison")
    reviewer = api.key("reviewer")
    results = batch(
        api,
        [
            listing("R1", **FAKE),
            listing("R2", title="poison"),
            listing("R3"),
            listing("R4", **FAKE),
        ],
    )
    assert [r.get("error") for r in results] == [None, "not_stored", None, None]
    assert results[1]["listing_id"] == "R2" and results[1]["index"] == 1
    for listing_id in ("R1", "R3", "R4"):
        assert api.call("GET", f"/v1/listings/{listing_id}").status_code == 200
    assert api.call("GET", "/v1/listings/R2").status_code == 404
    queued = {
        i["listing_id"] for i in api.call("GET", "/v1/review/queue", key=reviewer).json()["items"]
    }
    assert {"R1", "R4"} <= queued and "R2" not in queued
    # The rest of the batch is kept, and a retry returns what was stored.
    again = batch(api, [listing("R1", **FAKE), listing("R3")])
    assert [r["verdict_id"] for r in again] == [results[0]["verdict_id"], results[2]["verdict_id"]]


def test_two_requests_racing_for_the_same_new_listings_store_them_once(api: Api) -> None:
    from api.ingest import service
    from api.ingest.schemas import ListingIn

    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    bodies = [ListingIn(**listing(f"S{i}", **(FAKE if i % 2 else {}))) for i in range(20)]

    def work(_: int) -> list[str]:
        session = ctx.sessions()
        try:
            out = service.score_listings(session, ctx, bodies)
            session.commit()
            return [v.verdict_id for v in out]  # type: ignore[union-attr]
        finally:
            session.close()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(work, range(4)))
    assert all(a == answers[0] for a in answers), answers
    for i in (0, 1, 19):
        versions = api.call("GET", f"/v1/listings/S{i}").json()["versions"]
        assert [v["verdict"]["verdict_id"] for v in versions] == [answers[0][i]]


def test_an_invalid_item_gets_its_own_error_and_the_rest_are_scored(api: Api) -> None:
    """A listing that is not a valid one (a field missing, not an object) is answered in its
    place with validation_error and its fields; the indexes are the batch's, also for an item
    that fails later (the database refuses it) behind invalid ones."""
    _refuse_title(api, "poison")
    results = batch(
        api,
        [
            listing("V1"),
            {"listing_id": "X1", "seller_id": "s"},
            5,
            listing("V2", title="poison"),
            listing("V3", **FAKE),
        ],
    )
    assert [r.get("error") for r in results] == [
        None,
        "validation_error",
        "validation_error",
        "not_stored",
        None,
    ]
    assert [r.get("index") for r in results[1:4]] == [1, 2, 3]
    assert results[1]["listing_id"] == "X1" and results[2]["listing_id"] is None
    assert results[1]["fields"] == [{"field": "listings[1].title", "message": "Field required"}]
    assert "listings[1].title: Field required" in results[1]["detail"]
    assert results[3]["listing_id"] == "V2"
    assert results[4]["decision"] in ("review", "block")
    for listing_id, status in (("V1", 200), ("X1", 404), ("V2", 404), ("V3", 200)):
        assert api.call("GET", f"/v1/listings/{listing_id}").status_code == status


def test_what_is_not_a_batch_is_refused_whole(api: Api) -> None:
    for body in ({"listings": []}, {"listings": "L1"}, {}, {"listings": [listing("A")], "x": 1}):
        r = api.call("POST", "/v1/listings/score-batch", json=body)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", (body, r.text)
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["BatchIn"]
    items = schema["properties"]["listings"]["items"]
    assert {"$ref": "#/components/schemas/ListingIn"} in items["anyOf"]
