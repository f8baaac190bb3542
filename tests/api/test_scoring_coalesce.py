"""Single-listing requests coalesced in a worker (api.ingest.coalesce): each request gets its own
verdict or its own error, retries and edits keep their meaning, and a failed shared write is
answered per request.

A group is made deterministic by holding the first one: while it waits, the requests sent next
queue up and are scored together as the second group (the sizes are read from the queue's
``on_group`` hook, which the metrics use).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from api.ingest import coalesce, service
from api.ingest.coalesce import ScoringQueue
from store.blobs import BlobStoreFull
from tests.api.conftest import Api
from tests.api.test_scoring import listing
from tests.api.test_scoring_batch import FAKE, _refuse_title
from tests.support.images import product_photo


@dataclass
class Held:
    """Once armed, holds the first group until :meth:`release` and records every group's size."""

    queue: ScoringQueue
    armed: bool = False
    sizes: list[int] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.gate.set()

    def wait_queued(self, n: int) -> None:
        """Until ``n`` requests wait behind the held group (a wait, not a timing assertion)."""
        deadline = time.monotonic() + 60
        while len(self.queue._waiting) < n:
            assert time.monotonic() < deadline, f"{len(self.queue._waiting)} of {n} queued"
            time.sleep(0.005)


@pytest.fixture
def held(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    queue: ScoringQueue = api.client.app.state.ctx.score_queue  # type: ignore[attr-defined]
    assert queue.enabled  # on by default
    h = Held(queue)
    original = service.score_group

    def score_group(session: Any, ctx: Any, bodies: Sequence[Any]) -> Any:
        if not h.armed:
            return original(session, ctx, bodies)
        h.sizes.append(len(bodies))
        if len(h.sizes) == 1:
            h.entered.set()
            assert h.gate.wait(60)
        return original(session, ctx, bodies)

    monkeypatch.setattr(service, "score_group", score_group)
    yield h
    h.release()


def in_one_group(
    api: Api, held: Held, bodies: Sequence[dict[str, Any]], key: str
) -> list[httpx.Response]:
    """A held first request, then ``bodies`` queued in order behind it: answered as one group."""
    held.armed = True
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        first = pool.submit(post, api, listing("first"), key)
        assert held.entered.wait(60)
        futures = []
        for i, body in enumerate(bodies):  # queued in this order
            futures.append(pool.submit(post, api, body, key))
            held.wait_queued(i + 1)
        held.release()
        assert first.result().status_code == 200
        answers = [f.result() for f in futures]
    assert held.sizes[:2] == [1, len(bodies)], held.sizes
    return answers


def post(api: Api, body: dict[str, Any], key: str) -> httpx.Response:
    return api.call("POST", "/v1/listings/score", key=key, json=body)


def stored_verdicts(api: Api, listing_id: str) -> list[str]:
    r = api.call("GET", f"/v1/listings/{listing_id}")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return [v["verdict"]["verdict_id"] for v in r.json()["versions"]]


def test_concurrent_requests_are_scored_together_each_with_its_own_verdict(
    api: Api, held: Held
) -> None:
    api.brand("Nike")
    ingest = api.key("ingest")
    bodies = [listing(f"G{i}", **(FAKE if i % 2 else {})) for i in range(6)]
    answers = in_one_group(api, held, bodies, ingest)
    verdicts = [r.json() for r in answers]
    assert [r.status_code for r in answers] == [200] * 6
    assert [v["listing_id"] for v in verdicts] == [f"G{i}" for i in range(6)]
    assert len({v["verdict_id"] for v in verdicts}) == 6
    assert not any(v["cached"] for v in verdicts)
    # Each verdict is its own listing's (the counterfeits flagged, the plain wallets allowed)
    # and is what was stored for it.
    assert [v["decision"] != "allow" for v in verdicts] == [bool(i % 2) for i in range(6)]
    for v in verdicts:
        assert stored_verdicts(api, v["listing_id"]) == [v["verdict_id"]]
    # The same listings sent again one by one: the stored verdicts, cached.
    for v, body in zip(verdicts, bodies, strict=True):
        again = post(api, body, ingest).json()
        assert (again["verdict_id"], again["cached"]) == (v["verdict_id"], True)
        assert again["score"] == v["score"]


def test_a_bad_listing_in_a_group_fails_alone(api: Api, held: Held) -> None:
    _refuse_title(api, "poison")
    ingest = api.key("ingest")
    image = {"data": base64.b64encode(product_photo(1, 120)).decode()}
    too_many = api.settings.max_images_per_listing + 1
    bodies = [
        listing("B0"),
        listing("B1", images=[image] * too_many),  # 422, as alone
        listing("B2", title="poison"),  # the database refuses it: 500, as alone
        listing("B3", **FAKE),
    ]
    answers = in_one_group(api, held, bodies, ingest)
    assert [r.status_code for r in answers] == [200, 422, 500, 200]
    assert answers[1].json()["error"] == "too_many_images"
    assert answers[2].json()["error"] == "internal_error"
    assert stored_verdicts(api, "B0") == [answers[0].json()["verdict_id"]]
    assert stored_verdicts(api, "B3") == [answers[3].json()["verdict_id"]]
    assert stored_verdicts(api, "B1") == [] and stored_verdicts(api, "B2") == []
    # The poisoned listing, alone, gets the same answer.
    alone = post(api, listing("B2", title="poison"), ingest)
    assert alone.status_code == 500 and alone.json()["error"] == "internal_error"


def test_a_listing_that_breaks_the_scorer_fails_alone(
    api: Api, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = api.key("ingest")
    original = service._listing_input

    def listing_input(body: Any) -> Any:
        if body.title == "explode":
            raise RuntimeError("scorer bug")
        return original(body)

    monkeypatch.setattr(service, "_listing_input", listing_input)
    bodies = [listing("X0"), listing("X1", title="explode"), listing("X2")]
    answers = in_one_group(api, held, bodies, ingest)
    assert [r.status_code for r in answers] == [200, 500, 200]
    # The group failed as a whole and was scored again one listing at a time.
    assert held.sizes == [1, 3, 1, 1, 1]
    assert stored_verdicts(api, "X0") == [answers[0].json()["verdict_id"]]
    assert stored_verdicts(api, "X2") == [answers[2].json()["verdict_id"]]
    assert stored_verdicts(api, "X1") == []


def test_retries_and_edits_within_a_group(api: Api, held: Held) -> None:
    ingest = api.key("ingest")
    stored = post(api, listing("R0", **FAKE), ingest).json()
    edited = listing("R1", title="Leather wallet, black")
    bodies = [
        listing("R0", **FAKE),  # a retry of a stored listing
        listing("R1"),  # new ...
        listing("R1"),  # ... and the same content again in the same group
        edited,  # ... then an edit
    ]
    answers = [r.json() for r in in_one_group(api, held, bodies, ingest)]
    assert (answers[0]["verdict_id"], answers[0]["cached"]) == (stored["verdict_id"], True)
    assert answers[1]["cached"] is False
    assert (answers[2]["verdict_id"], answers[2]["cached"]) == (answers[1]["verdict_id"], True)
    assert answers[3]["cached"] is False and answers[3]["verdict_id"] != answers[1]["verdict_id"]
    # History: the stored one untouched, R1's two contents as versions in arrival order.
    assert stored_verdicts(api, "R0") == [stored["verdict_id"]]
    assert stored_verdicts(api, "R1") == [answers[1]["verdict_id"], answers[3]["verdict_id"]]


def test_a_failed_commit_is_answered_per_request_and_keeps_what_was_stored(
    api: Api, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = api.key("ingest")
    kept = post(api, listing("C0"), ingest).json()
    original = coalesce.finish_unit
    failures: list[int] = []

    def finish_unit(session: Any) -> None:
        if len(held.sizes) == 2 and not failures:  # the shared write of the held group
            failures.append(1)
            session.rollback()
            session.close()
            raise OperationalError("COMMIT", {}, Exception("connection lost"))
        original(session)

    monkeypatch.setattr(coalesce, "finish_unit", finish_unit)
    bodies = [listing("C0"), listing("C1", **FAKE), listing("C2")]
    answers = in_one_group(api, held, bodies, ingest)
    assert failures == [1]
    assert [r.status_code for r in answers] == [503, 503, 503]
    for r in answers:
        assert r.json()["error"] == "unavailable" and r.headers["Retry-After"]
        assert r.headers["X-Request-ID"]  # each answer carries its own request's id
    assert len({r.headers["X-Request-ID"] for r in answers}) == 3
    assert stored_verdicts(api, "C0") == [kept["verdict_id"]]
    assert stored_verdicts(api, "C1") == [] and stored_verdicts(api, "C2") == []
    # Retried, they are stored; the listing stored before is answered from the store.
    again = [post(api, b, ingest) for b in bodies]
    assert [r.status_code for r in again] == [200, 200, 200]
    assert (again[0].json()["verdict_id"], again[0].json()["cached"]) == (kept["verdict_id"], True)
    assert stored_verdicts(api, "C1") == [again[1].json()["verdict_id"]]


def test_an_image_the_blob_store_refuses_fails_only_its_listing(
    api: Api, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = api.key("ingest")
    blobs = api.client.app.state.ctx.blobs  # type: ignore[attr-defined]
    refused = product_photo(3, 160)
    original = blobs.stage

    def stage(data: bytes, **kw: Any) -> Any:
        if data == refused:
            raise BlobStoreFull("no space left on device")
        return original(data, **kw)

    monkeypatch.setattr(blobs, "stage", stage)
    fine = product_photo(4, 160)
    bodies = [
        listing("I0", images=[{"data": base64.b64encode(fine).decode()}]),
        listing(
            "I1",
            images=[
                {"data": base64.b64encode(product_photo(5, 160)).decode()},
                {"data": base64.b64encode(refused).decode()},
            ],
        ),
        listing("I2"),
    ]
    answers = in_one_group(api, held, bodies, ingest)
    assert [r.status_code for r in answers] == [200, 507, 200]
    assert answers[1].json()["error"] == "insufficient_storage"
    assert stored_verdicts(api, "I1") == []
    # I1's other image was not left in the blob store; I0's is there.
    assert blobs.get(service.hashlib.sha256(fine).hexdigest()) == fine
    assert not blobs.exists(service.hashlib.sha256(product_photo(5, 160)).hexdigest())


def test_with_coalescing_off_each_request_is_scored_alone(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue: ScoringQueue = api.client.app.state.ctx.score_queue  # type: ignore[attr-defined]
    monkeypatch.setattr(queue, "enabled", False)
    sizes: list[int] = []
    entered = threading.Barrier(4, timeout=60)
    original = service.score_group

    def score_group(session: Any, ctx: Any, bodies: Sequence[Any]) -> Any:
        sizes.append(len(bodies))
        entered.wait()  # all four are being scored at once, each in its own unit
        return original(session, ctx, bodies)

    monkeypatch.setattr(service, "score_group", score_group)
    ingest = api.key("ingest")
    send: Callable[[int], httpx.Response] = lambda i: post(api, listing(f"O{i}"), ingest)  # noqa: E731
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert [r.status_code for r in answers] == [200] * 4
    assert sizes == [1, 1, 1, 1]
    for i, r in enumerate(answers):
        assert stored_verdicts(api, f"O{i}") == [r.json()["verdict_id"]]


def test_group_sizes_are_in_the_metrics(api: Api, held: Held) -> None:
    ingest = api.key("ingest")
    in_one_group(api, held, [listing(f"M{i}") for i in range(3)], ingest)
    text = api.call("GET", "/metrics").text
    assert "fakeguard_scoring_group_listings_count 2.0" in text
    assert "fakeguard_scoring_group_listings_sum 4.0" in text
