"""The review repository: enqueue rules, ordering, filters, leases, decisions, labels, and
claim-next under real concurrency (PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory, session_scope
from store.listings import ListingRepository, Snapshot, VerdictRecord
from store.review import QueueFilter, ReviewRepository, effective_status
from store.tables import ReviewDecision, ReviewItem, Verdict

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=300)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(db_url, pool_size=12)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def scored(
    s: Session,
    listing: str,
    score: float,
    decision: str,
    *,
    brand: str | None = "b1",
    seller: str = "s1",
    content: str = "v1",
    title: str = "title",
) -> Verdict:
    snap = Snapshot(
        external_id=listing,
        content_hash=f"{listing}-{content}",
        seller_id=seller,
        title=title,
        description=None,
        price_amount=Decimal("10"),
        price_currency="USD",
        brand_claimed=None,
        category=None,
        images=[],
    )
    record = VerdictRecord(score, decision, brand, [], [], [], "text:test", 0)
    verdict, created = ListingRepository(s).record(snap, record)
    assert created
    return verdict


def flag(
    s: Session, listing: str, score: float, decision: str = "review", **kw: object
) -> ReviewItem:
    now = kw.pop("now", None)
    verdict = scored(s, listing, score, decision, **kw)  # type: ignore[arg-type]
    item = ReviewRepository(s).enqueue_for_verdict(verdict, now=now)  # type: ignore[arg-type]
    assert item is not None
    return item


def test_only_review_and_block_verdicts_are_queued(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        repo = ReviewRepository(s)
        assert repo.enqueue_for_verdict(scored(s, "A", 0.1, "allow")) is None
        assert repo.enqueue_for_verdict(scored(s, "R", 0.6, "review")) is not None
        assert repo.enqueue_for_verdict(scored(s, "B", 0.9, "block")) is not None
        rows, total = repo.page(QueueFilter(), limit=10, offset=0)
        assert total == 2 and {r.external_id for r in rows} == {"R", "B"}


def test_rescore_updates_the_open_item_and_decided_items_stay(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as s:
        repo = ReviewRepository(s)
        first = flag(s, "L", 0.6, now=T0)
        v2 = scored(s, "L", 0.9, "block", content="v2")
        again = repo.enqueue_for_verdict(v2, now=T0 + timedelta(minutes=1))
        assert again is not None and again.id == first.id
        assert again.verdict_id == v2.id and again.decision == "block"
        assert again.created_at == T0  # keeps its place in line
        assert repo.page(QueueFilter(), limit=10, offset=0)[1] == 1

        repo.decide(again, key_id="k", label="counterfeit", note=None, reason_codes=[])
        v3 = scored(s, "L", 0.7, "review", content="v3")
        third = repo.enqueue_for_verdict(v3)
        assert third is not None and third.id != first.id
        items = s.scalars(select(ReviewItem)).all()
        assert {i.id: i.status for i in items} == {first.id: "decided", third.id: "pending"}
        assert repo.get(first.id) is not None
        assert repo.get(first.id).verdict_id == v2.id  # type: ignore[union-attr]


def test_order_is_score_then_age_and_filters_apply(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        flag(s, "low", 0.55, now=T0)
        flag(s, "high-new", 0.95, "block", now=T0 + timedelta(minutes=2), brand="b2")
        flag(s, "high-old", 0.95, "block", now=T0 + timedelta(minutes=1))
        flag(s, "mid", 0.7, now=T0 + timedelta(minutes=3))
        repo = ReviewRepository(s)

        def ids(f: QueueFilter, limit: int = 10, offset: int = 0) -> list[str]:
            return [r.external_id for r in repo.page(f, limit=limit, offset=offset, now=T0)[0]]

        assert ids(QueueFilter()) == ["high-old", "high-new", "mid", "low"]
        assert ids(QueueFilter(), limit=2, offset=1) == ["high-new", "mid"]
        assert ids(QueueFilter(brand_id="b2")) == ["high-new"]
        assert ids(QueueFilter(decision="review")) == ["mid", "low"]
        assert ids(QueueFilter(min_score=0.7)) == ["high-old", "high-new", "mid"]
        item = repo.claim_next(QueueFilter(), "k1", LEASE, now=T0)
        assert item is not None
        assert ids(QueueFilter(status="claimed")) == ["high-old"]
        assert ids(QueueFilter(status="pending")) == ["high-new", "mid", "low"]
        later = T0 + LEASE + timedelta(seconds=1)
        assert [
            r.external_id
            for r in repo.page(QueueFilter("claimed"), limit=9, offset=0, now=later)[0]
        ] == []


def test_neighbours_follow_the_queue_order_however_deep(sessions: sessionmaker[Session]) -> None:
    """Previous/next of every item equal its neighbours in the paged order, with ties in score
    and in time broken as the queue breaks them, 230 items deep (the pages once looked at the
    first 200 only)."""
    with session_scope(sessions) as s:
        for i in range(230):
            # 23 scores, 5 enqueue times: many exact ties on both
            flag(s, f"n{i:03d}", 0.5 + (i % 23) / 100, now=T0 + timedelta(seconds=i % 5))
        repo = ReviewRepository(s)
        order = [r.item.id for r in repo.page(QueueFilter(), limit=1000, offset=0, now=T0)[0]]
        assert len(order) == 230
        for at, item_id in enumerate(order):
            expected = (order[at - 1] if at else None, order[at + 1] if at + 1 < 230 else None)
            assert repo.neighbours(QueueFilter(), item_id, now=T0) == expected, at
        # filters apply to the neighbours, and a claimed item is found for its holder
        repo.claim(order[-1], "alice", LEASE, now=T0)
        assert repo.neighbours(QueueFilter(status="pending"), order[-1], now=T0) == (
            order[-2],
            None,
        )
        assert repo.first_held(QueueFilter(), "alice", now=T0) == order[-1]
        assert repo.first_held(QueueFilter(), "bob", now=T0) is None
        assert repo.neighbours(QueueFilter(), "nope", now=T0) == (None, None)


def test_claims_are_leases(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        item_id = flag(s, "L", 0.8).id
        repo = ReviewRepository(s)
        item, won = repo.claim(item_id, "alice", LEASE, now=T0)
        assert won and item is not None and item.claimed_by == "alice"
        assert effective_status(item, T0) == "claimed"
        item, won = repo.claim(item_id, "bob", LEASE, now=T0 + timedelta(seconds=10))
        assert not won and item is not None and item.claimed_by == "alice"
        # re-claiming your own extends the lease
        item, won = repo.claim(item_id, "alice", LEASE, now=T0 + timedelta(seconds=100))
        assert won and item is not None
        assert item.claim_expires_at == T0 + timedelta(seconds=100) + LEASE
        # an expired lease is anyone's
        late = T0 + timedelta(seconds=100) + LEASE + timedelta(seconds=1)
        assert item.claim_expires_at is not None
        assert effective_status(item, late) == "pending"
        item, won = repo.claim(item_id, "bob", LEASE, now=late)
        assert won and item is not None and item.claimed_by == "bob"
        assert repo.claim("nope", "bob", LEASE, now=late) == (None, False)


def test_a_reviewer_releases_only_their_own_claim(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        item_id = flag(s, "R", 0.8).id
        repo = ReviewRepository(s)
        repo.claim(item_id, "alice", LEASE, now=T0)
        assert not repo.release(item_id, "bob", now=T0)  # bob holds nothing
        assert repo.release(item_id, "alice", now=T0)
        assert not repo.release(item_id, "alice", now=T0)  # already free
        s.expire_all()
        item = repo.get(item_id)
        assert item is not None and item.claimed_by is None and item.claim_expires_at is None
        assert effective_status(item, T0) == "pending"
        # free at once: anyone can take it, long before alice's lease would have run out
        item, won = repo.claim(item_id, "bob", LEASE, now=T0 + timedelta(seconds=1))
        assert won and item is not None and item.claimed_by == "bob"
        assert repo.claim_next(QueueFilter(), "carol", LEASE, now=T0) is None


def test_claim_next_skips_live_claims_and_empties(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        flag(s, "a", 0.9, "block")
        flag(s, "b", 0.6)
        repo = ReviewRepository(s)
        first = repo.claim_next(QueueFilter(), "k1", LEASE, now=T0)
        second = repo.claim_next(QueueFilter(), "k2", LEASE, now=T0)
        assert first is not None and second is not None
        assert (first.score, second.score) == (0.9, 0.6)
        assert repo.claim_next(QueueFilter(), "k3", LEASE, now=T0) is None
        # after the leases run out the highest-risk one comes back first
        again = repo.claim_next(QueueFilter(), "k3", LEASE, now=T0 + LEASE + timedelta(seconds=1))
        assert again is not None and again.id == first.id and again.claimed_by == "k3"
        assert repo.claim_next(QueueFilter(brand_id="other"), "k3", LEASE, now=T0) is None


def test_decisions_are_appended_and_revise(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        item = flag(s, "L", 0.8)
        repo = ReviewRepository(s)
        d1 = repo.decide(item, key_id="alice", label="unsure", note="hm", reason_codes=["x"])
        d2 = repo.decide(item, key_id="bob", label="counterfeit", note=None, reason_codes=[])
        assert (d1.previous_label, d2.previous_label) == (None, "unsure")
        assert item.label == "counterfeit" and item.status == "decided"
        assert item.open_listing_id is None and item.claimed_by is None
        history = repo.decisions([item.id])[item.id]
        assert [(d.reviewer_key_id, d.label) for d in history] == [
            ("alice", "unsure"),
            ("bob", "counterfeit"),
        ]
        assert history[0].verdict_id == item.verdict_id
        assert s.scalar(select(ReviewDecision.reason_codes).where(ReviewDecision.id == d1.id)) == [
            "x"
        ]


def test_labelled_listings_and_confirmed(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        repo = ReviewRepository(s)
        for name, label in (("c", "counterfeit"), ("g", "genuine"), ("u", "unsure")):
            item = flag(s, name, 0.8, title=f"title {name}")
            repo.decide(item, key_id="k", label=label, note=None, reason_codes=[])
        flag(s, "open", 0.8)
        got = {(v.title, label) for v, label in repo.labelled_listings()}
        assert got == {("title c", "counterfeit"), ("title g", "genuine")}
        # a relabel to unsure drops it
        item_c = s.scalar(select(ReviewItem).where(ReviewItem.label == "counterfeit"))
        assert item_c is not None
        assert [r.listing.external_id for r in repo.confirmed(None, limit=10)] == ["c"]
        assert repo.confirmed("other-brand", limit=10) == []
        repo.decide(item_c, key_id="k", label="unsure", note=None, reason_codes=[])
        assert {v.title for v, _ in repo.labelled_listings()} == {"title g"}
        assert repo.confirmed(None, limit=10) == []


def test_concurrent_claim_next_claims_each_item_once(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """N threads, each with its own session and transaction per claim, drain a queue of M items:
    every item is claimed exactly once (PostgreSQL: SKIP LOCKED + conditional UPDATE)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: the race only exists on PostgreSQL")
    m, n = 60, 8
    with session_scope(sessions) as s:
        for i in range(m):
            flag(s, f"L{i}", 0.5 + (i % 10) / 25)
    claims: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def worker(key: str) -> None:
        try:
            start.wait()
            while True:
                with session_scope(sessions) as s:
                    item = ReviewRepository(s).claim_next(QueueFilter(), key, LEASE)
                    if item is None:
                        return
                    got = (item.id, key)
                with lock:
                    claims.append(got)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"k{i}",)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    per_item = Counter(item for item, _ in claims)
    assert len(per_item) == m, f"{m - len(per_item)} items never claimed"
    assert max(per_item.values()) == 1, [i for i, c in per_item.items() if c > 1]
    assert len({key for _, key in claims}) > 1  # the work really was shared
    with session_scope(sessions) as s:
        rows = s.scalars(select(ReviewItem)).all()
        assert all(r.status == "claimed" and r.claimed_by for r in rows)
        assert {r.id: r.claimed_by for r in rows} == {i: k for i, k in claims}
