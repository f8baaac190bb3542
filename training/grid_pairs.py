"""Stage-2 features of the evaluation grid, stored once, to score verifier models in seconds.

The full evaluation (``training/eval_images.py``) runs both stages on every query: ~35 minutes.
A verifier model only changes the decision on the pairs stage 1 hands over, so this module
stores, per query, the stage-1 candidates (as the run-time path ranks them) and the stage-2
measurements (:func:`detector.verify.measure`) of each, and :func:`score` replays any model
JSON (``python -m training.train_verifier --out ...``) on them, vetoes included. Measurements
change with ``detector/verify.py``: collect again after changing it.

Run::

    python -m training.grid_pairs collect --every 3 --out .cache/fakeguard/grid-pairs/pos.jsonl
    python -m training.grid_pairs collect --negatives --out .cache/fakeguard/grid-pairs/neg.jsonl
    python -m training.grid_pairs collect --corpus holdout --negatives --out .../holdout-neg.jsonl
    python -m training.grid_pairs score --positives ...pos.jsonl --negatives ...neg.jsonl \\
        detector/data/verifier.json /tmp/candidate.json

``--cap`` stores more candidates than are verified at run time; ``score --cap N`` replays the
first N (``FAKEGUARD_MAX_CANDIDATES``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector import images, verify
from training.attacks import ATTACKS, ATTACKS_BY_NAME, apply_attack
from training.engine_matcher import EngineMatcher
from training.eval_images import add_corpus_arguments, attack_seed, named_corpus
from training.image_corpus import Corpus, read_corpus

logger = logging.getLogger(__name__)

Record = dict[str, Any]

_WORKER: dict[str, Any] = {}


def _init_worker(root: str, distance: int) -> None:
    """The evaluation's own engine (stage-1 index and prepared references) in each worker."""
    corpus = read_corpus(Path(root))
    engine = EngineMatcher(max_distance=distance)
    data: dict[str, bytes] = {}
    for ref in corpus.references:
        data[ref.image_id] = ref.path.read_bytes()
        engine.add_reference(ref.image_id, data[ref.image_id])
    negatives = {n.image_id: n.path for n in corpus.negatives}
    _WORKER.update(index=engine.index, views=engine.views, data=data, negatives=negatives)


def _collect_one(job: tuple[str, str | None, int]) -> Record:
    """One query: its first ``cap`` stage-1 candidates and their stage-2 measurements."""
    image_id, attack, cap = job
    if attack is None:
        query = Path(_WORKER["negatives"][image_id]).read_bytes()
    else:
        raw = _WORKER["data"][image_id]
        query = apply_attack(ATTACKS_BY_NAME[attack], raw, attack_seed(image_id, attack))
    record: Record = {"query": image_id, "attack": attack, "candidates": []}
    try:
        candidates = _WORKER["index"].search(images.hash_query(images.decode(query)))[:cap]
        if candidates:
            view = verify.prepare_query(query)
    except images.ImageRejected:
        return record
    for cand in candidates:
        feats, _ = verify.measure(view, _WORKER["views"][cand.reference_id])
        record["candidates"].append({"reference": cand.reference_id, "features": feats})
    return record


def jobs_for(
    corpus: Corpus, negatives: bool, every: int, attacks: Sequence[str], cap: int
) -> list[tuple[str, str | None, int]]:
    if negatives:
        return [(n.image_id, None, cap) for n in corpus.negatives]
    refs = corpus.references[::every]
    return [(r.image_id, a, cap) for a in attacks for r in refs]


def collect(
    root: Path,
    jobs: Sequence[tuple[str, str | None, int]],
    out: Path,
    workers: int = 2,
    distance: int = 12,
) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (
        ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(str(root), distance)
        ) as ex,
        out.open("w") as f,
    ):
        for i, record in enumerate(ex.map(_collect_one, jobs, chunksize=8)):
            f.write(json.dumps(record) + "\n")
            if (i + 1) % 200 == 0:
                logger.info(
                    "%d/%d queries, %.0f s", i + 1, len(jobs), time.perf_counter() - started
                )
    return len(jobs)


# --- replay -------------------------------------------------------------------------------------


class StoredModel:
    """A verifier model JSON scored on stored measurements (its own feature list)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.names = tuple(payload["features"])
        self._model = verify._Model({**payload, "features": list(verify.FEATURES)})

    def accepts(self, feats: dict[str, float]) -> bool:
        """What :func:`detector.verify.verify` decides from these measurements."""
        if not feats:
            return False
        x = np.array([feats.get(n, 0.0) for n in self.names], dtype=np.float64)
        threshold = self._model.threshold_for(feats)
        return self._model.score(x) >= threshold and verify.veto(feats) is None


@dataclass
class Replay:
    hits: Counter[str] = field(default_factory=Counter)
    queries: Counter[str] = field(default_factory=Counter)
    false_matches: list[tuple[str, list[str]]] = field(default_factory=list)
    negatives: int = 0

    @property
    def recall(self) -> float:
        return sum(self.hits.values()) / max(1, sum(self.queries.values()))


def score(
    model: StoredModel, positives: Iterable[Record], negatives: Iterable[Record], cap: int = 5
) -> Replay:
    """Recall per attack (own reference among the accepted first ``cap`` candidates) and the
    negatives with any accepted candidate."""
    out = Replay()
    for rec in positives:
        attack = str(rec["attack"])
        out.queries[attack] += 1
        out.hits[attack] += any(
            c["reference"] == rec["query"] and model.accepts(c["features"])
            for c in rec["candidates"][:cap]
        )
    for rec in negatives:
        out.negatives += 1
        accepted = [c["reference"] for c in rec["candidates"][:cap] if model.accepts(c["features"])]
        if accepted:
            out.false_matches.append((str(rec["query"]), accepted))
    return out


def _read(path: str | None) -> list[Record]:
    if not path:
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="store stage-1 candidates and stage-2 measurements")
    add_corpus_arguments(c)
    c.add_argument("--negatives", action="store_true", help="all negatives instead of the grid")
    c.add_argument("--every", type=int, default=1, help="every Nth reference (grid)")
    c.add_argument("--attacks", default=",".join(a.name for a in ATTACKS))
    c.add_argument("--cap", type=int, default=5, help="candidates stored per query")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--out", required=True)
    s = sub.add_parser("score", help="replay verifier models on stored measurements")
    s.add_argument("--positives")
    s.add_argument("--negatives")
    s.add_argument("--cap", type=int, default=5)
    s.add_argument("models", nargs="+", help="verifier model JSON files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "collect":
        corpus, _ = named_corpus(args.corpus, args.cache)
        root = corpus.root
        attacks = [a for a in args.attacks.split(",") if a]
        unknown = sorted(set(attacks) - set(ATTACKS_BY_NAME))
        if unknown:
            parser.error(f"unknown attacks: {', '.join(unknown)}")
        jobs = jobs_for(corpus, args.negatives, args.every, attacks, args.cap)
        n = collect(root, jobs, Path(args.out), args.workers)
        print(f"{n} queries -> {args.out}")
        return 0
    positives, negatives = _read(args.positives), _read(args.negatives)
    for path in args.models:
        model = StoredModel(json.loads(Path(path).read_text()))
        r = score(model, positives, negatives, args.cap)
        per_attack = " ".join(f"{a}:{r.hits[a]}/{r.queries[a]}" for a in r.queries)
        m = model._model
        print(
            f"{path}: threshold {m.threshold:.3f} (paint regime {m.paint_threshold:.3f}), "
            f"recall {100 * r.recall:.1f} %"
        )
        if per_attack:
            print(f"  {per_attack}")
        print(f"  false matches {len(r.false_matches)}/{r.negatives}: {r.false_matches}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
