"""The review pages over HTTP: sign-in, bad keys, cookie flags, CSRF, decisions through the form,
claims shown to other reviewers, sign-out and expiry; and the stats figures on known data (JSON
endpoint and page). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from store.db import make_engine, make_session_factory, session_scope
from store.tables import AuditEvent, ReviewDecision, ReviewerSession, ReviewItem
from tests.api.conftest import Api
from tests.api.test_review import brands, item_of, score
from tests.support.images import product_photo

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def signin_nonce(client: TestClient) -> str:
    r = client.get("/review/sign-in")
    assert r.status_code == 200, r.text
    found = CSRF.search(r.text)
    assert found
    return found.group(1)


def sign_in(client: TestClient, key: str) -> str:
    """Sign in through the form; returns the session's CSRF token (from a page's hidden field)."""
    r = client.post(
        "/review/sign-in",
        data={"key": key, "csrf": signin_nonce(client), "next": "/review/queue"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/review/queue", r.text
    page = client.get("/review/queue")
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


def set_cookies(r: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}


def db_rows(api: Api, model: Any) -> list[Any]:
    engine = make_engine(api.settings.db_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return list(s.scalars(select(model)).all())
    finally:
        engine.dispose()


def db_update(api: Api, statement: Any) -> None:
    engine = make_engine(api.settings.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()


def test_pages_need_a_session_and_sign_in_sets_a_strict_cookie(api: Api) -> None:
    reviewer = api.key("reviewer")
    r = api.client.get("/review/items/x?decision=block", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/review/sign-in?next=%2Freview%2Fitems%2Fx%3Fdecision%3Dblock"
    page = api.client.get("/review/sign-in")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    r = api.client.post(
        "/review/sign-in",
        data={"key": reviewer, "csrf": CSRF.search(page.text).group(1), "next": "/review/stats"},  # type: ignore[union-attr]
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/review/stats"
    cookie = set_cookies(r)["fg_review_session"]
    flags = [p.strip().lower() for p in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/review" in flags
    assert "max-age=43200" in flags and "secure" not in flags  # plain http here
    token = cookie.split(";")[0].split("=", 1)[1]
    # only the token's hash is stored
    rows = db_rows(api, ReviewerSession)
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in str(vars(row)) for row in rows)
    expires = rows[0].expires_at - datetime.now(UTC)
    assert timedelta(hours=11, minutes=59) < expires <= timedelta(hours=12)
    assert "review.sign_in" in {e.action for e in db_rows(api, AuditEvent)}
    assert api.client.get("/review/stats").status_code == 200
    # an open redirect is refused
    api.client.cookies.clear()
    r = api.client.post(
        "/review/sign-in",
        data={"key": reviewer, "csrf": signin_nonce(api.client), "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/review/queue"


def test_cookie_is_secure_over_https(api: Api) -> None:
    reviewer = api.key("reviewer")
    client = TestClient(api.client.app, base_url="https://testserver")
    r = client.post(
        "/review/sign-in",
        data={"key": reviewer, "csrf": signin_nonce(client)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "secure" in [p.strip().lower() for p in set_cookies(r)["fg_review_session"].split(";")]


def test_bad_keys_and_roles_cannot_sign_in(api: Api) -> None:
    brand = api.brand("Acme")
    cases = [
        ("fg_nope_nope", 401, "not valid or has been revoked"),
        ("not even a key", 401, "not valid or has been revoked"),
        (api.key("ingest"), 403, "need a reviewer or admin key"),
        (api.key("brand", brand["id"]), 403, "need a reviewer or admin key"),
    ]
    for key, status, message in cases:
        r = api.client.post(
            "/review/sign-in",
            data={"key": key, "csrf": signin_nonce(api.client)},
            follow_redirects=False,
        )
        assert r.status_code == status and message in r.text, (key, r.status_code)
        assert "fg_review_session" not in set_cookies(r)
    assert db_rows(api, ReviewerSession) == []
    # an admin key may review
    created = api.call("POST", "/v1/keys", json={"role": "admin"}).json()
    sign_in(api.client, created["key"])
    # revoking the key ends its sessions at once
    assert api.call("DELETE", f"/v1/keys/{created['id']}").status_code == 200
    assert api.client.get("/review/queue", follow_redirects=False).status_code == 303


def test_csrf_is_checked_on_every_post(api: Api) -> None:
    brands(api)
    score(api, "P1", "Acme bag")
    item = item_of(api, "P1")
    reviewer = api.key("reviewer")
    # the sign-in form itself (login CSRF): no nonce cookie or a wrong one
    r = api.client.post("/review/sign-in", data={"key": reviewer, "csrf": "x"})
    assert r.status_code == 403 and "Form rejected" in r.text
    csrf = sign_in(api.client, reviewer)
    for token in (None, "", "0" * 64, csrf[:-1] + ("0" if csrf[-1] != "0" else "1")):
        data = {"label": "counterfeit"} | ({"csrf": token} if token is not None else {})
        r = api.client.post(f"/review/items/{item['id']}/decision", data=data)
        assert r.status_code == 403 and "Form rejected" in r.text, token
        r = api.client.post(
            f"/review/items/{item['id']}/claim", headers={"X-CSRF-Token": token or ""}
        )
        assert r.status_code == 403
    assert api.client.post("/review/sign-out", data={}).status_code == 403
    assert db_rows(api, ReviewDecision) == []
    assert item_of(api, "P1")["status"] == "pending"
    r = api.client.post(f"/review/items/{item['id']}/claim", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["claimed_by_you"] is True
    assert item_of(api, "P1")["status"] == "claimed"


def test_decision_through_the_form_is_stored_and_the_next_item_opens(api: Api) -> None:
    b = brands(api)
    api.call(
        "PATCH",
        f"/v1/brands/{b['acme']['id']}",
        json={"reference_price": {"amount": 200, "currency": "USD"}},
    )
    r = api.call(
        "POST",
        f"/v1/brands/{b['acme']['id']}/references",
        files=[("files", ("ref.jpg", product_photo(5, 400), "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    ref_id = r.json()["references"][0]["id"]
    score(
        api,
        "F1",
        "Acme bag 1:1 replica",
        description="top batch, same factory as Acme",
        images=[product_photo(5, 400)],
    )
    score(api, "F2", "Boom bag")
    first, second = item_of(api, "F1"), item_of(api, "F2")
    reviewer = api.key("reviewer")
    csrf = sign_in(api.client, reviewer)

    page = api.client.get(f"/review/items/{first['id']}")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'class="span-brand"' in html and 'class="span-cue"' in html
    assert f'src="/review/items/{first["id"]}/images/0"' in html
    assert f'src="/review/references/{b["acme"]["id"]}/{ref_id}"' in html
    assert "200 USD" in html and "not authorised" in html
    for src in re.findall(r'<img src="([^"]+)"', html):
        img = api.client.get(src)
        assert img.status_code == 200 and img.headers["content-type"].startswith("image/"), src
    # images need the session
    anonymous = TestClient(api.client.app)
    r = anonymous.get(f"/review/items/{first['id']}/images/0", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/review/sign-in")

    r = api.client.post(
        f"/review/items/{first['id']}/decision",
        data={
            "csrf": csrf,
            "label": "counterfeit",
            "reason_codes": ["replica_wording", "copied_photo"],
            "note": "same photo, replica words",
            "verdict_id": first["verdict_id"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/review/items/{second['id']}"  # claimed next
    assert item_of(api, "F2")["status"] == "claimed"
    detail = api.call("GET", f"/v1/review/{first['id']}").json()
    assert detail["label"] == "counterfeit" and detail["status"] == "decided"
    (decision,) = detail["decisions"]
    assert decision["reason_codes"] == ["replica_wording", "copied_photo"]
    assert decision["note"] == "same photo, replica words"
    reviewer_id = next(
        k["id"] for k in api.call("GET", "/v1/keys").json()["keys"] if k["prefix"] in reviewer
    )
    assert decision["reviewer_key_id"] == reviewer_id
    assert "review.decision" in {e.action for e in db_rows(api, AuditEvent)}
    # the decided item's page shows the history; the last decision empties the queue
    assert "same photo, replica words" in api.client.get(f"/review/items/{first['id']}").text
    r = api.client.post(
        f"/review/items/{second['id']}/decision",
        data={"csrf": csrf, "label": "genuine"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/review/queue?empty=1"
    # a bad label is a clear page, not a stored decision
    r = api.client.post(
        f"/review/items/{second['id']}/decision", data={"csrf": csrf, "label": "maybe"}
    )
    assert r.status_code == 422 and "not valid" in r.text
    assert len(db_rows(api, ReviewDecision)) == 2


def test_the_queue_page_filters_and_pages(api: Api) -> None:
    b = brands(api)
    for i in range(3):
        score(api, f"Q{i}", f"Acme wallet {i}")
    score(api, "QB", "Boom wallet")
    sign_in(api.client, api.key("reviewer"))
    html = api.client.get("/review/queue").text
    assert all(f"Q{i}" in html for i in range(3)) and "QB" in html
    html = api.client.get("/review/queue", params={"decision": "block"}).text
    assert "QB" in html and "Q0" not in html
    html = api.client.get("/review/queue", params={"brand_id": b["acme"]["id"]}).text
    assert "Q0" in html and "QB" not in html
    assert "4 open items" in api.client.get("/review/queue").text


def test_an_item_held_by_another_reviewer_is_shown_and_cannot_be_decided(api: Api) -> None:
    brands(api)
    score(api, "H1", "Acme scarf")
    item = item_of(api, "H1")
    alice, bob = api.key("reviewer"), api.key("reviewer")
    assert api.call("POST", f"/v1/review/{item['id']}/claim", key=alice).status_code == 200
    csrf = sign_in(api.client, bob)
    html = api.client.get(f"/review/items/{item['id']}").text
    assert "Held by" in html and "deciding is blocked" in html
    assert re.search(r'value="counterfeit"[^>]*disabled', html)
    r = api.client.post(f"/review/items/{item['id']}/claim", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and r.json()["error"] == "already_claimed"
    r = api.client.post(
        f"/review/items/{item['id']}/decision", data={"csrf": csrf, "label": "genuine"}
    )
    assert r.status_code == 409 and "claimed by another reviewer" in r.text
    assert db_rows(api, ReviewDecision) == []


def test_sign_out_and_expiry_end_the_session(api: Api) -> None:
    reviewer = api.key("reviewer")
    csrf = sign_in(api.client, reviewer)
    token = api.client.cookies.get("fg_review_session")
    assert token
    r = api.client.post("/review/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/sign-in"
    assert db_rows(api, ReviewerSession) == []
    # replaying the old cookie does not work
    replay = TestClient(api.client.app, cookies={"fg_review_session": token})
    assert replay.get("/review/queue", follow_redirects=False).status_code == 303
    sign_in(api.client, reviewer)
    db_update(
        api, update(ReviewerSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    r = api.client.get("/review/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/review/sign-in")
    r = api.client.post("/review/sign-out", data={"csrf": csrf})
    assert r.status_code == 401 and "Signed out" in r.text


def test_stats_figures_on_known_data(api: Api) -> None:
    """Volume per day, precision per band and brand, time to first decision and queue depth."""
    b = brands(api)
    for lid in ("A1", "A2", "A3", "A4", "A5"):
        score(api, lid, f"Acme belt {lid}")  # review band
    for lid in ("B1", "B2"):
        score(api, lid, f"Boom belt {lid}")  # block band
    items = {lid: item_of(api, lid)["id"] for lid in ("A1", "A2", "A3", "A4", "A5", "B1", "B2")}
    labels = {"A1": "counterfeit", "A2": "genuine", "A3": "unsure"}
    labels |= {"B1": "counterfeit", "B2": "counterfeit"}
    for lid, label in labels.items():
        r = api.call("POST", f"/v1/review/{items[lid]}/decision", json={"label": label})
        assert r.status_code == 200, r.text
    r = api.call("POST", f"/v1/review/{items['A3']}/decision", json={"label": "genuine"})
    assert r.status_code == 200  # a revision: counts for the label, not the time to decision
    assert api.call("POST", f"/v1/review/{items['A5']}/claim", key=api.key("reviewer")).is_success

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    created = {"A1": 2, "A2": 2, "A3": 2, "B1": 1, "B2": 1}  # days ago, at 10:00
    delays = {"A1": 10, "A2": 20, "A3": 30, "B1": 40, "B2": 50}
    for lid, ago in created.items():
        at = today - timedelta(days=ago) + timedelta(hours=10)
        first = at + timedelta(seconds=delays[lid])
        last = first + timedelta(seconds=500 if lid == "A3" else 0)
        db_update(
            api,
            update(ReviewItem)
            .where(ReviewItem.id == items[lid])
            .values(created_at=at, decided_at=last),
        )
        decisions = sorted(
            (d for d in db_rows(api, ReviewDecision) if d.item_id == items[lid]),
            key=lambda d: d.id,
        )
        for d, when in zip(decisions, (first, last), strict=False):
            db_update(
                api,
                update(ReviewDecision).where(ReviewDecision.id == d.id).values(created_at=when),
            )

    r = api.call("GET", "/v1/review/stats", params={"days": 3})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["days"] == 3 and s["since"].startswith((today - timedelta(days=2)).date().isoformat())
    assert [(v["review"], v["block"], v["decided"]) for v in s["volume"]] == [
        (3, 0, 4),
        (0, 2, 2),
        (2, 0, 0),
    ]
    bands = {p["key"]: p for p in s["precision_by_band"]}
    assert (bands["review"]["counterfeit"], bands["review"]["genuine"]) == (1, 2)
    assert bands["review"]["unsure"] == 0 and abs(bands["review"]["precision"] - 1 / 3) < 1e-9
    assert bands["block"]["precision"] == 1.0 and bands["block"]["counterfeit"] == 2
    by_brand = {p["name"]: p for p in s["precision_by_brand"]}
    assert by_brand["Acme"]["key"] == b["acme"]["id"]
    assert abs(by_brand["Acme"]["precision"] - 1 / 3) < 1e-9
    assert by_brand["Boom"]["precision"] == 1.0
    ttd = s["time_to_decision"]
    assert ttd["decided"] == 5
    assert abs(ttd["median_seconds"] - 30) < 1e-6 and abs(ttd["p90_seconds"] - 46) < 1e-6
    assert s["queue"] == {
        "pending": 1,
        "claimed": 1,
        "open": 2,
        "oldest_pending_at": s["queue"]["oldest_pending_at"],
    }
    # a one-day window sees only today's items
    one = api.call("GET", "/v1/review/stats", params={"days": 1}).json()
    assert [(v["review"], v["block"]) for v in one["volume"]] == [(2, 0)]
    assert one["time_to_decision"]["decided"] == 0 and one["precision_by_brand"] == []
    for bad in ({"days": 0}, {"days": 1000}):
        assert api.call("GET", "/v1/review/stats", params=bad).status_code == 422

    sign_in(api.client, api.key("reviewer"))
    page = api.client.get("/review/stats", params={"days": 3})
    assert page.status_code == 200
    assert 'id="volume-chart"' in page.text and page.text.count('class="bar ') == 3
    assert "33 %" in page.text and "30 s" in page.text and "46 s" in page.text


def test_highlight_and_percentile_helpers() -> None:
    from api.ingest.schemas import SpanOut
    from api.review.stats import percentile
    from api.web.views import highlight

    text = "Acme 1:1 replica <b>"
    spans = [
        SpanOut(field="title", kind="brand", start=0, end=4, text="Acme", label="b", detail=""),
        SpanOut(field="title", kind="cue", start=5, end=16, text="", label="x", detail="grade"),
        SpanOut(
            field="title", kind="cue", start=9, end=16, text="", label="y", detail=""
        ),  # inside
        SpanOut(field="description", kind="cue", start=0, end=3, text="", label="z", detail=""),
        SpanOut(field="title", kind="cue", start=18, end=99, text="", label="w", detail=""),  # bad
    ]
    segments = highlight(text, spans, "title")
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.kind) for s in segments] == [
        ("Acme", "brand"),
        (" ", None),
        ("1:1 replica", "cue"),
        (" <b>", None),
    ]
    assert segments[2].tip == "cue: x (grade)"
    assert highlight(None, spans, "title") == []
    assert percentile([], 50) is None
    assert percentile([10, 20, 30, 40, 50], 50) == 30 and percentile([10, 20, 30, 40, 50], 90) == 46
    assert percentile([7], 90) == 7


def test_page_templates_and_static_files_are_package_data() -> None:
    """A non-editable install must carry every template and static file."""
    import tomllib
    from pathlib import Path, PurePosixPath

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api"]
    files = [
        p.relative_to(root / "api").as_posix()
        for sub in ("templates", "static")
        for p in (root / "api" / "web" / sub).rglob("*")
        if p.is_file()
    ]
    assert {"web/templates/item.html", "web/static/review.js"} <= set(files)
    missing = [f for f in files if not any(PurePosixPath(f).match(pat) for pat in patterns)]
    assert missing == []


def test_item_page_says_the_listing_was_edited_after_the_flag(api: Api) -> None:
    brands(api)
    score(api, "P1", "Acme shoes")
    item = item_of(api, "P1")
    sign_in(api.client, api.key("reviewer"))
    assert 'data-role="later-versions"' not in api.client.get(f"/review/items/{item['id']}").text
    score(api, "P1", "Calm shoes")  # edited, allowed: the item stays as flagged
    html = api.client.get(f"/review/items/{item['id']}").text
    assert 'data-role="later-versions"' in html and "Edited after it was flagged" in html
    assert "“Calm shoes”" in html and 'class="badge allow"' in html
