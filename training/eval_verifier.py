"""Held-out evaluation of the stage-2 verifier on the official corpus and attack grid.

Pairs (query, reference):

- positive: every reference attacked with every attack of :data:`training.attacks.ATTACKS`
  (the cached ``attacked/<attack>/<ref_id>.bin`` when present, else made with the grid's seed),
  against its own reference;
- hard negative: every hard negative against the reference it imitates;
- distractor: every distractor against its nearest reference by 64-bit DCT hash
  (:mod:`detector.images`, the reference's stored variants vs the query's hash), i.e. the
  candidate the cheap stage would most likely hand over.

Nothing in ``training/train_verifier.py`` saw these images or these attack parameters.

Run: ``python -m training.eval_verifier [--cache DIR] [--workers 2] [--limit N] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from detector import images, verify
from training.attacks import ATTACKS, ATTACKS_BY_NAME, apply_attack
from training.eval_images import attack_seed
from training.image_corpus import Corpus, CorpusImage, read_corpus, resolve_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairResult:
    group: str  # attack name for positives, "<role>/<kind>" for negatives
    ref_kind: str
    label: int
    accepted: bool
    aligned: bool
    score: float
    verify_ms: float
    prepare_ms: float


def _attacked(cache: Path, attack: str, ref: CorpusImage) -> bytes:
    """The grid's cached attacked image (``<cache>/../attacked``), or the attack made afresh."""
    path = cache.parent / "attacked" / attack / f"{ref.image_id}.bin"
    if path.exists():
        return path.read_bytes()
    return apply_attack(
        ATTACKS_BY_NAME[attack], ref.path.read_bytes(), attack_seed(ref.image_id, attack)
    )


def _run_pair(query: bytes, ref_view: verify.VerifyView) -> tuple[bool, bool, float, float, float]:
    t0 = time.perf_counter()
    try:
        qv = verify.prepare_query(query)
    except images.ImageRejected:
        return False, False, 0.0, 0.0, 0.0
    t1 = time.perf_counter()
    result = verify.verify(qv, ref_view)
    t2 = time.perf_counter()
    return (
        result.accepted,
        result.inliers > 0 and bool(result.features),
        result.score,
        (t2 - t1) * 1000,
        (t1 - t0) * 1000,
    )


def _ref_job(
    args: tuple[CorpusImage, list[CorpusImage], list[str], str],
) -> list[PairResult]:
    ref, negatives, attacks, cache = args
    ref_view = verify.prepare_reference(ref.path.read_bytes())
    out: list[PairResult] = []
    for name in attacks:
        acc, aligned, score, v_ms, p_ms = _run_pair(_attacked(Path(cache), name, ref), ref_view)
        out.append(PairResult(name, ref.kind, 1, acc, aligned, score, v_ms, p_ms))
    for neg in negatives:
        acc, aligned, score, v_ms, p_ms = _run_pair(neg.path.read_bytes(), ref_view)
        out.append(
            PairResult(f"{neg.role}/{neg.kind}", ref.kind, 0, acc, aligned, score, v_ms, p_ms)
        )
    return out


def nearest_references(corpus: Corpus, distractors: Sequence[CorpusImage]) -> dict[str, str]:
    """Distractor id -> id of the reference whose stored hash variants are closest."""
    stored: list[tuple[str, int]] = []
    for ref in corpus.references:
        decoded = images.decode(ref.path.read_bytes(), draft=False)
        stored += [(ref.image_id, h.value) for h in images.hash_reference(decoded)]
    out = {}
    for d in distractors:
        try:
            q = images.hash_query(images.decode(d.path.read_bytes()))[0].value
        except images.ImageRejected:
            continue
        out[d.image_id] = min(stored, key=lambda s: images.hamming(q, s[1]))[0]
    return out


def _pct(a: int, n: int) -> str:
    return f"{100 * a / n:5.1f}% ({a}/{n})" if n else "n/a"


def report(results: Sequence[PairResult]) -> str:
    lines = ["| positives: attack | accepted | stamp refs | photo refs |", "|---|---:|---:|---:|"]
    pos = [r for r in results if r.label == 1]
    for attack in [a.name for a in ATTACKS]:
        rs = [r for r in pos if r.group == attack]
        st = [r for r in rs if r.ref_kind == "stamp_logo"]
        ph = [r for r in rs if r.ref_kind != "stamp_logo"]
        lines.append(
            f"| {attack} | {_pct(sum(r.accepted for r in rs), len(rs))} | "
            f"{_pct(sum(r.accepted for r in st), len(st))} | "
            f"{_pct(sum(r.accepted for r in ph), len(ph))} |"
        )
    lines.append(f"| **all attacks** | **{_pct(sum(r.accepted for r in pos), len(pos))}** | | |")
    lines += ["", "| negatives: kind | rejected | aligned |", "|---|---:|---:|"]
    neg = [r for r in results if r.label == 0]
    for kind in sorted({r.group for r in neg}):
        rs = [r for r in neg if r.group == kind]
        lines.append(
            f"| {kind} | {_pct(sum(not r.accepted for r in rs), len(rs))} | "
            f"{_pct(sum(r.aligned for r in rs), len(rs))} |"
        )
    hard = [r for r in neg if r.group.startswith("hard_negative")]
    lines.append(
        f"| **hard negatives** | **{_pct(sum(not r.accepted for r in hard), len(hard))}** | |"
    )
    lines.append(
        f"| **all negatives** | **{_pct(sum(not r.accepted for r in neg), len(neg))}** | |"
    )
    v = sorted(r.verify_ms for r in results if r.verify_ms > 0)
    p = sorted(r.prepare_ms for r in results if r.prepare_ms > 0)
    if v:
        lines += [
            "",
            f"verify: mean {statistics.fmean(v):.1f} ms, median {v[len(v) // 2]:.1f} ms, "
            f"p95 {v[int(0.95 * len(v))]:.1f} ms, max {v[-1]:.1f} ms; prepare (query): mean "
            f"{statistics.fmean(p):.1f} ms ({len(v)} pairs)",
        ]
    return "\n".join(lines)


def timing(refs: Sequence[CorpusImage], cache: Path) -> str:
    """verify() alone, in this process, one pair at a time: every attack of a few references."""
    pairs = []
    for ref in refs:
        ref_view = verify.prepare_reference(ref.path.read_bytes())
        for attack in ATTACKS:
            try:
                pairs.append((verify.prepare_query(_attacked(cache, attack.name, ref)), ref_view))
            except images.ImageRejected:
                continue
    for q, r in pairs[:5]:
        verify.verify(q, r)  # warm-up (model load)
    times = []
    for q, r in pairs:
        t0 = time.perf_counter()
        verify.verify(q, r)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return (
        f"verify alone (sequential, {len(times)} pairs, references "
        f"{min(r.path.stat().st_size for r in refs) // 1000}+ KB JPEGs of 800-1200 px): mean "
        f"{statistics.fmean(times):.1f} ms, median {times[len(times) // 2]:.1f} ms, p95 "
        f"{times[int(0.95 * len(times))]:.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Held-out evaluation of the image verifier.")
    parser.add_argument(
        "--cache", default=None, help="image cache (default .cache/fakeguard/images)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="only the first N references")
    parser.add_argument("--json", default=None, help="also write every pair's result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cache = resolve_cache(args.cache)
    corpus = read_corpus(cache / "corpus-full")
    refs = corpus.references[: args.limit] if args.limit else corpus.references
    ref_ids = {r.image_id for r in refs}
    hard_of: dict[str, list[CorpusImage]] = {r.image_id: [] for r in refs}
    for img in corpus.negatives:
        if img.role == "hard_negative" and img.imitates in ref_ids:
            hard_of[img.imitates].append(img)
    distractors = [i for i in corpus.negatives if i.role == "distractor"]
    if args.limit:
        distractors = distractors[: args.limit * 7]
    started = time.perf_counter()
    nearest = nearest_references(Corpus(corpus.root, tuple(refs)), distractors)
    logger.info(
        "nearest references for %d distractors in %.0f s",
        len(nearest),
        time.perf_counter() - started,
    )
    # distractors the cheap stage cannot even hash (flat, ...) never reach verification
    undecodable = [d for d in distractors if d.image_id not in nearest]
    by_id = {d.image_id: d for d in distractors}
    for d_id, r_id in nearest.items():
        hard_of[r_id].append(by_id[d_id])
    attacks = [a.name for a in ATTACKS]
    jobs = [(r, hard_of[r.image_id], attacks, str(cache)) for r in refs]
    results: list[PairResult] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, part in enumerate(pool.map(_ref_job, jobs)):
            results += part
            if (i + 1) % 50 == 0:
                logger.info("%d/%d references, %d pairs", i + 1, len(jobs), len(results))
    results += [
        PairResult(f"{d.role}/{d.kind}", "", 0, False, False, 0.0, 0.0, 0.0) for d in undecodable
    ]
    table = report(results)
    table += "\n" + timing(refs[: min(len(refs), 40)], cache)
    print(table)
    print(f"\n{len(results)} pairs in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
