"""The worker's in-memory view of every brand's reference catalog, kept fresh.

Each worker process holds a :class:`~detector.matching.CatalogIndex`. It is loaded from the
database at start, then kept current three ways:

* the worker that takes an upload or a delete applies it to its own index right after the
  database commit (the change is searchable when the response is sent);
* every ``catalog_refresh_seconds`` a background thread reads the catalog event log since the
  last event it applied (a cheap indexed query: the catalog version is compared first), and the
  holes below it: event ids come from a sequence, handed out when a transaction writes its
  event, but transactions commit in any order, so id 12 may be readable while 11 is not yet.
  A hole is asked for again at each refresh until it appears or :data:`GAP_WAIT_SECONDS` pass
  (a rolled-back transaction leaves one for good). Without this, two concurrent uploads on
  PostgreSQL left 27 and 87 of 1,000 references unsearchable in the other workers until the
  next reconciliation;
* brands' own match distances are read again at each refresh (they change without an event);
* every ``catalog_reconcile_seconds`` it compares the set of reference ids with the database,
  which repairs anything else (an event whose hole was given up on, say).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from detector import images
from detector.matching import CatalogIndex
from store.blobs import LocalBlobStore
from store.brands import BrandRepository
from store.db import session_scope
from store.references import ReferenceRepository

log = logging.getLogger("fakeguard.catalog")

#: How long a hole in the event ids is waited for: longer than any upload transaction takes.
GAP_WAIT_SECONDS = 600.0
#: Holes tracked at most (the oldest are given up first; reconciliation repairs the rest).
MAX_GAPS = 10_000
#: At start, ids this far below the catalog version are checked for holes.
GAP_LOOKBACK = 10_000


def after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run ``action`` once the session's transaction has committed (never on rollback)."""

    def _hook(_: Session) -> None:
        try:
            action()
        except Exception:  # the index catches up on its next refresh
            log.exception("applying a committed catalog change locally failed")

    event.listen(session, "after_commit", _hook, once=True)


@dataclass(frozen=True)
class RefMeta:
    brand_id: str
    sha256: str


class CatalogService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        default_distance: int,
        refresh_seconds: float = 2.0,
        reconcile_seconds: float = 60.0,
        gap_wait_seconds: float = GAP_WAIT_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.index = CatalogIndex(default_distance=default_distance)
        self.meta: dict[str, RefMeta] = {}
        self.refresh_seconds = refresh_seconds
        self.reconcile_seconds = reconcile_seconds
        self.last_event = 0
        #: event ids below ``last_event`` not seen yet -> when the hole was noticed (monotonic)
        self.gaps: dict[int, float] = {}
        self.gap_wait_seconds = gap_wait_seconds
        self.last_refresh_at = 0.0
        self.missing_hashes = 0
        #: references searched with hashes of an older, compatible algorithm version
        self.stale: set[str] = set()
        self.loaded = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reconcile = 0.0

    # --- loading and refreshing --------------------------------------------------------------

    def _add_from_db(
        self, repo: ReferenceRepository, entries: Sequence[tuple[str, str, str]]
    ) -> int:
        todo = [e for e in entries if e[0] not in self.index]
        if not todo:
            return 0
        by_ref: dict[str, list[tuple[str, int]]] = {}
        stale: set[str] = set()
        for version in (images.ALGORITHM_VERSION, *images.COMPATIBLE_VERSIONS):
            wanted = [e[0] for e in todo if e[0] not in by_ref]
            if not wanted:
                break
            found: dict[str, list[tuple[str, int]]] = {}
            rows = repo.hashes(
                algorithm=images.ALGORITHM, algorithm_version=version, reference_ids=wanted
            )
            for row in rows:
                found.setdefault(row.reference_id, []).append((row.variant, row.value))
            by_ref.update(found)
            if version != images.ALGORITHM_VERSION:
                stale.update(found)
        added = 0
        for ref_id, brand_id, sha in todo:
            hashes = by_ref.get(ref_id)
            if not hashes:
                self.missing_hashes += 1
                continue
            if ref_id in stale:
                self.stale.add(ref_id)
            self.meta[ref_id] = RefMeta(brand_id, sha)
            added += self.index.add(ref_id, brand_id, hashes)
        return added

    def load(self) -> None:
        """Full load (at start)."""
        with self._lock, session_scope(self.sessions) as session:
            repo = ReferenceRepository(session)
            version = repo.catalog_version()
            present = repo.event_ids_between(max(0, version - GAP_LOOKBACK), version)
            entries = repo.index_entries()
            self.missing_hashes = 0
            for start in range(0, len(entries), 500):
                self._add_from_db(repo, entries[start : start + 500])
            self._apply_distances(session)
            self.last_event = version
            self.gaps = {}
            self._note_gaps(max(0, version - GAP_LOOKBACK), present)
            self.index.version = version
            self.last_refresh_at = time.time()
            self._last_reconcile = time.monotonic()
            self.loaded = True
        if self.stale:
            log.warning(
                "%d references are searched with hashes of an older %s version (v%s); "
                "run `fakeguard catalog rehash` for v%d's robustness",
                len(self.stale),
                images.ALGORITHM,
                "/".join(map(str, images.COMPATIBLE_VERSIONS)),
                images.ALGORITHM_VERSION,
            )
        if self.missing_hashes:
            log.warning(
                "%d references have no %s v%d hashes; run `fakeguard catalog rehash`",
                self.missing_hashes,
                images.ALGORITHM,
                images.ALGORITHM_VERSION,
            )
        log.info(
            "catalog loaded: %d references, %d hashes, version %d",
            len(self.index),
            self.index.n_hashes,
            version,
        )

    def _apply_distances(self, session: Session) -> None:
        distances = BrandRepository(session).match_distances()
        for brand_id in list(self.index.brands()):
            self.index.set_brand_distance(brand_id, distances.get(brand_id))
        for brand_id, distance in distances.items():
            self.index.set_brand_distance(brand_id, distance)

    def _note_gaps(self, after: int, ids: Sequence[int]) -> None:
        """Record as holes the ids above ``after`` missing from the ascending ``ids``."""
        now = time.monotonic()
        expected = after + 1
        for event_id in ids:
            for missing in range(max(expected, event_id - MAX_GAPS), event_id):
                self.gaps[missing] = now
            expected = max(expected, event_id + 1)
        if len(self.gaps) > MAX_GAPS:
            for old in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[old]

    def _expire_gaps(self) -> None:
        cutoff = time.monotonic() - self.gap_wait_seconds
        for event_id in [g for g, seen in self.gaps.items() if seen < cutoff]:
            del self.gaps[event_id]

    def refresh(self) -> int:
        """Apply catalog events since the last one seen, and those that filled a hole below it
        (see the module docstring); returns how many were applied."""
        applied = 0
        with self._lock, session_scope(self.sessions) as session:
            repo = ReferenceRepository(session)
            self._expire_gaps()
            if not self.gaps and repo.catalog_version() <= self.last_event:
                # a brand's match distance changes without a catalog event
                self._apply_distances(session)
                self.last_refresh_at = time.time()
                return 0
            while True:
                changes = repo.changes_since(self.last_event, limit=1000, also=sorted(self.gaps))
                if not changes:
                    break
                adds: dict[str, tuple[str, str, str]] = {}
                for change in changes:
                    if change.op == "update":  # rehashed: drop, then load the new hashes
                        self._remove(change.reference_id)
                    if change.op in ("add", "update"):
                        adds[change.reference_id] = (change.reference_id, change.brand_id, "")
                    else:
                        adds.pop(change.reference_id, None)
                        self._remove(change.reference_id)
                    if change.event_id > self.last_event:
                        self._note_gaps(self.last_event, [change.event_id])
                        self.last_event = change.event_id
                    else:
                        self.gaps.pop(change.event_id, None)
                    applied += 1
                if adds:
                    shas = {e[0]: e[2] for e in repo.index_entries_for(list(adds))}
                    self._add_from_db(
                        repo, [(r, b, shas[r]) for r, b, _ in adds.values() if r in shas]
                    )
            self._apply_distances(session)
            self.index.version = self.last_event
            self.last_refresh_at = time.time()
        return applied

    def reconcile(self) -> tuple[int, int]:
        """Make the index hold exactly the database's references; returns (added, removed)."""
        with self._lock, session_scope(self.sessions) as session:
            repo = ReferenceRepository(session)
            entries = repo.index_entries()
            wanted = {e[0] for e in entries}
            extra = [ref_id for ref_id in list(self.meta) if ref_id not in wanted]
            for ref_id in extra:
                self._remove(ref_id)
            added = self._add_from_db(repo, entries)
            self._last_reconcile = time.monotonic()
        if added or extra:
            log.warning("catalog reconcile: %d added, %d removed", added, len(extra))
        return added, len(extra)

    def _remove(self, ref_id: str) -> None:
        self.index.remove(ref_id)
        self.meta.pop(ref_id, None)
        self.stale.discard(ref_id)

    # --- changes made by this worker ---------------------------------------------------------

    def added_locally(
        self, ref_id: str, brand_id: str, sha256: str, hashes: Iterable[tuple[str, int]]
    ) -> None:
        with self._lock:
            self.meta[ref_id] = RefMeta(brand_id, sha256)
            self.index.add(ref_id, brand_id, list(hashes))

    def distance_changed_locally(self, brand_id: str, distance: int | None) -> None:
        with self._lock:
            self.index.set_brand_distance(brand_id, distance)

    def removed_locally(self, ref_ids: Iterable[str]) -> None:
        with self._lock:
            for ref_id in ref_ids:
                self._remove(ref_id)

    # --- the background thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                if not self.loaded:
                    self.load()
                    continue
                self.refresh()
                if time.monotonic() - self._last_reconcile >= self.reconcile_seconds:
                    self.reconcile()
            except Exception:  # the database may be down: keep serving, try again later
                log.warning("catalog refresh failed; will retry", exc_info=True)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="catalog-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def status(self) -> dict[str, object]:
        return {
            "references": len(self.index),
            "hashes": self.index.n_hashes,
            "version": self.index.version,
            "index_bytes": self.index.nbytes(),
            "refreshed_at": self.last_refresh_at,
            "references_without_hashes": self.missing_hashes,
            "references_with_old_hashes": len(self.stale),
            "loaded": self.loaded,
        }


@dataclass(frozen=True)
class RehashReport:
    rehashed: int
    failed: list[tuple[str, str]]


def rehash_references(
    sessions: sessionmaker[Session],
    blobs: LocalBlobStore,
    *,
    everything: bool = False,
    progress: bool = True,
) -> RehashReport:
    """Recompute stored hashes from the original bytes for the current algorithm version.

    By default only references lacking hashes of the current version; ``everything`` redoes all.
    Workers pick the new hashes up through the catalog event log.
    """
    with session_scope(sessions) as session:
        repo = ReferenceRepository(session)
        todo = (
            repo.all()
            if everything
            else repo.without_hashes(
                algorithm=images.ALGORITHM, algorithm_version=images.ALGORITHM_VERSION
            )
        )
        ids = [(r.id, r.brand_id, r.sha256) for r in todo]
    failed: list[tuple[str, str]] = []
    done = 0
    iterator: Iterable[tuple[str, str, str]] = ids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ids, desc="rehash", unit="ref")
    for ref_id, _brand_id, sha in iterator:
        data = blobs.get(sha)
        if data is None:
            failed.append((ref_id, "original bytes missing from the blob store"))
            continue
        try:
            hashes = images.hash_reference(images.decode(data, draft=False))
        except images.ImageRejected as exc:
            failed.append((ref_id, exc.reason))
            continue
        with session_scope(sessions) as session:
            repo = ReferenceRepository(session)
            ref = repo.get_any(ref_id)
            if ref is None:
                continue
            repo.replace_hashes(
                ref,
                [(h.variant, h.value) for h in hashes],
                algorithm=images.ALGORITHM,
                algorithm_version=images.ALGORITHM_VERSION,
            )
        done += 1
    return RehashReport(done, failed)
