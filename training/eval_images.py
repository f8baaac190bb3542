"""Evaluate reference-photo matchers against the attack grid on the SYNTHETIC image corpus.

For each matcher: every reference is added, every attack in :data:`training.attacks.ATTACKS` is
applied to every reference and the result queried (a hit when the query's matches include *its*
reference), and every negative image is queried (a false match when it matches *any* reference).
Reported: recall per attack, overall recall (all attacked queries), false-match rate over all
negatives and over hard negatives alone, and mean query time.

Run: ``python -m training.eval_images [--small] [--out reports/images] [--matcher naive]``;
``--corpus holdout`` evaluates on the holdout corpus (:mod:`training.holdout_corpus`, made from
other registry packages than the main corpus and the verifier's training data) and reports to
``reports/images/holdout`` by default.

Plugging in another matcher is one line: ``MATCHERS["engine"] = EngineMatcher`` (any zero-argument
callable returning an object that follows :class:`Matcher`), or pass ``--matcher pkg.mod:Factory``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import statistics
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import imagehash
from PIL import Image

from training.attacks import ATTACKS, Attack, apply_attack
from training.image_corpus import Corpus

logger = logging.getLogger(__name__)

ORIGINAL = "original"  # sanity row: the reference's own bytes, not part of the grid or the overall


@runtime_checkable
class Matcher(Protocol):
    """What the evaluation needs from a matcher."""

    name: str

    def add_reference(self, ref_id: str, data: bytes) -> None: ...

    def query(self, data: bytes) -> list[str]:  # ids of matched references
        ...


class NaiveMatcher:
    """Baseline: 64-bit pHash of the full decoded image, match at Hamming distance <= 10."""

    name = "naive_phash"

    def __init__(self, max_distance: int = 10) -> None:
        self.max_distance = max_distance
        self._ids: list[str] = []
        self._hashes: list[int] = []

    @staticmethod
    def _hash(data: bytes) -> int:
        with Image.open(io.BytesIO(data)) as img:
            return int(str(imagehash.phash(img)), 16)

    def add_reference(self, ref_id: str, data: bytes) -> None:
        self._ids.append(ref_id)
        self._hashes.append(self._hash(data))

    def query(self, data: bytes) -> list[str]:
        h = self._hash(data)
        return [
            ref_id
            for ref_id, ref in zip(self._ids, self._hashes, strict=True)
            if (h ^ ref).bit_count() <= self.max_distance
        ]


MatcherFactory = Callable[[], Matcher]


# Registration point: add the real engine here (one line) or pass --matcher module:factory.
def _engine() -> Matcher:
    from training.engine_matcher import EngineMatcher

    return EngineMatcher()


def _first_stage() -> Matcher:
    from training.engine_matcher import FirstStageMatcher

    return FirstStageMatcher()


MATCHERS: dict[str, MatcherFactory] = {
    "naive": NaiveMatcher,
    "fakeguard": _engine,
    "first_stage": _first_stage,
}


def resolve_matcher(spec: str) -> MatcherFactory:
    """A factory from a MATCHERS name or a ``package.module:attribute`` path."""
    if spec in MATCHERS:
        return MATCHERS[spec]
    if ":" in spec:
        module, _, attr = spec.partition(":")
        factory: MatcherFactory = getattr(importlib.import_module(module), attr)
        return factory
    raise KeyError(f"unknown matcher {spec!r}; registered: {', '.join(MATCHERS)}")


@dataclass(frozen=True)
class EvalImage:
    image_id: str
    role: str  # reference, hard_negative or distractor
    data: bytes
    kind: str = ""  # finer grouping of negatives for the report (e.g. other_product_logo)


@dataclass
class MatcherResult:
    name: str
    hits: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    negatives: int = 0
    false_matches: int = 0
    hard_negatives: int = 0
    hard_false_matches: int = 0
    query_seconds: list[float] = field(default_factory=list)
    false_match_ids: list[str] = field(default_factory=list)
    miss_ids: dict[str, list[str]] = field(default_factory=dict)  # attack -> missed references
    negatives_by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [false, all]

    def recall(self, attack: str) -> float:
        return (
            self.hits[attack] / self.queries[attack] if self.queries.get(attack) else float("nan")
        )

    @property
    def overall_recall(self) -> float:
        names = [a for a in self.queries if a != ORIGINAL]
        total = sum(self.queries[a] for a in names)
        return sum(self.hits[a] for a in names) / total if total else float("nan")

    @property
    def false_match_rate(self) -> float:
        return self.false_matches / self.negatives if self.negatives else float("nan")

    @property
    def hard_false_match_rate(self) -> float:
        return (
            self.hard_false_matches / self.hard_negatives if self.hard_negatives else float("nan")
        )

    @property
    def mean_query_ms(self) -> float:
        return 1000 * statistics.fmean(self.query_seconds) if self.query_seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recall": {a: self.recall(a) for a in self.queries},
            "hits": dict(self.hits),
            "queries": dict(self.queries),
            "recall_overall": self.overall_recall,
            "false_match_rate": self.false_match_rate,
            "hard_negative_false_match_rate": self.hard_false_match_rate,
            "negatives": self.negatives,
            "false_matches": self.false_matches,
            "hard_negatives": self.hard_negatives,
            "hard_false_matches": self.hard_false_matches,
            "mean_query_ms": self.mean_query_ms,
            "false_matches_by_kind": {
                k: {"false": f, "all": n} for k, (f, n) in sorted(self.negatives_by_kind.items())
            },
            "false_match_ids": sorted(self.false_match_ids),
            "miss_ids": {a: ids for a, ids in self.miss_ids.items() if ids},
        }


def attack_seed(ref_id: str, attack_name: str) -> int:
    """The per-query seed: stable across runs, machines and Python hash randomisation."""
    return zlib.crc32(f"{ref_id}:{attack_name}".encode())


def _progress(items: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm import tqdm

    bar: Iterable[Any] = tqdm(items, total=total, desc=desc, unit="q")
    return bar


def evaluate(
    matchers: Sequence[Matcher],
    references: Sequence[EvalImage],
    negatives: Sequence[EvalImage],
    attacks: Sequence[Attack] = ATTACKS,
    *,
    include_original: bool = True,
    progress: bool = True,
) -> list[MatcherResult]:
    """Run the grid; each attacked query is made once and given to every matcher."""
    results = [MatcherResult(m.name) for m in matchers]
    for matcher in matchers:
        for ref in references:
            matcher.add_reference(ref.image_id, ref.data)

    def ask(data: bytes) -> list[set[str]]:
        answers = []
        for matcher, result in zip(matchers, results, strict=True):
            started = time.perf_counter()
            ids = matcher.query(data)
            result.query_seconds.append(time.perf_counter() - started)
            answers.append(set(ids))
        return answers

    grid: list[tuple[str, Attack | None]] = [(ORIGINAL, None)] if include_original else []
    grid += [(a.name, a) for a in attacks]
    jobs = [(name, attack, ref) for name, attack in grid for ref in references]
    for name, attack, ref in _progress(jobs, len(jobs), "attacked queries", progress):
        data = (
            ref.data
            if attack is None
            else apply_attack(attack, ref.data, attack_seed(ref.image_id, name))
        )
        for result, ids in zip(results, ask(data), strict=True):
            result.queries[name] = result.queries.get(name, 0) + 1
            result.hits[name] = result.hits.get(name, 0) + (ref.image_id in ids)
            if ref.image_id not in ids:
                result.miss_ids.setdefault(name, []).append(ref.image_id)
    for neg in _progress(negatives, len(negatives), "negative queries", progress):
        for result, ids in zip(results, ask(neg.data), strict=True):
            result.negatives += 1
            hard = neg.role == "hard_negative"
            result.hard_negatives += hard
            per_kind = result.negatives_by_kind.setdefault(f"{neg.role}/{neg.kind}", [0, 0])
            per_kind[0] += bool(ids)
            per_kind[1] += 1
            if ids:
                result.false_matches += 1
                result.hard_false_matches += hard
                result.false_match_ids.append(neg.image_id)
    return results


# --- report ------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def _ratio(counts: list[int]) -> str:
    false, total = counts
    return f"{_pct(false / total if total else float('nan'))} ({false}/{total})"


def markdown_table(results: Sequence[MatcherResult], attacks: Sequence[Attack] = ATTACKS) -> str:
    names = [r.name for r in results]
    lines = [
        "| attack | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    rows = [ORIGINAL] if results and ORIGINAL in results[0].queries else []
    rows += [a.name for a in attacks]
    for row in rows:
        label = f"{row} (sanity, not in overall)" if row == ORIGINAL else row
        lines.append(f"| {label} | " + " | ".join(_pct(r.recall(row)) for r in results) + " |")
    lines.append(
        "| **recall, overall** | "
        + " | ".join(f"**{_pct(r.overall_recall)}**" for r in results)
        + " |"
    )
    lines.append(
        "| false-match rate, all negatives | "
        + " | ".join(
            f"{_pct(r.false_match_rate)} ({r.false_matches}/{r.negatives})" for r in results
        )
        + " |"
    )
    lines.append(
        "| false-match rate, hard negatives | "
        + " | ".join(
            f"{_pct(r.hard_false_match_rate)} ({r.hard_false_matches}/{r.hard_negatives})"
            for r in results
        )
        + " |"
    )
    lines.append(
        "| mean query time | " + " | ".join(f"{r.mean_query_ms:.1f} ms" for r in results) + " |"
    )
    return "\n".join(lines)


def bar_chart(
    results: Sequence[MatcherResult],
    path: Path,
    attacks: Sequence[Attack] = ATTACKS,
    corpus: str = "synthetic corpus",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a.name for a in attacks] + ["OVERALL"]
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(names) * max(1, len(results))), 5))
    width = 0.8 / max(1, len(results))
    for i, r in enumerate(results):
        values = [r.recall(a.name) for a in attacks] + [r.overall_recall]
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [100 * v for v in values], width=width, label=r.name)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"Recall per attack ({corpus})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    results: Sequence[MatcherResult],
    out: Path,
    corpus_info: dict[str, Any],
    attacks: Sequence[Attack] = ATTACKS,
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results, attacks)
    lines = [
        "# Image matching evaluation"
        + (" (holdout corpus)" if corpus_info.get("corpus") == "holdout" else ""),
        "",
        f"{corpus_info.get('note', '')}",
        "",
        f"Corpus: {corpus_info.get('references', '?')} references, "
        f"{corpus_info.get('hard_negatives', '?')} hard negatives, "
        f"{corpus_info.get('distractors', '?')} other distractors "
        f"({corpus_info.get('root', 'in memory')}).",
        "Recall: the attacked reference finds its own reference among the matches. "
        "False match: a negative matches any reference.",
        "",
        table,
        "",
        "Attacks:",
        "",
        *[f"- `{a.name}`: {a.description}" for a in attacks],
        "",
        "False matches by kind of negative:",
        "",
        "| negative | " + " | ".join(r.name for r in results) + " |",
        "|---|" + "---:|" * len(results),
        *[
            f"| {kind} | "
            + " | ".join(_ratio(r.negatives_by_kind.get(kind, [0, 0])) for r in results)
            + " |"
            for kind in sorted({k for r in results for k in r.negatives_by_kind})
        ],
        "",
    ]
    (out / "image_eval.md").write_text("\n".join(lines))
    payload = {
        "corpus": corpus_info,
        "attacks": [{"name": a.name, "description": a.description} for a in attacks],
        "matchers": {r.name: r.to_dict() for r in results},
    }
    (out / "image_eval.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    corpus = "synthetic holdout corpus" if corpus_info.get("corpus") == "holdout" else ""
    bar_chart(results, out / "image_eval.png", attacks, corpus or "synthetic corpus")
    return table


CORPORA = ("main", "holdout")


def named_corpus(corpus_name: str, cache: str | None, small: bool = False) -> tuple[Corpus, str]:
    """The corpus called ``corpus_name`` (see :data:`CORPORA`), built unless current in
    ``cache``, and the note that says what it is."""
    if corpus_name == "holdout":
        from training.holdout_corpus import HOLDOUT_NOTE as note
        from training.holdout_corpus import build_holdout as build
    elif corpus_name == "main":
        from training.image_corpus import SYNTHETIC_NOTE as note
        from training.image_corpus import build_corpus as build
    else:
        raise ValueError(f"unknown corpus {corpus_name!r}; one of {', '.join(CORPORA)}")
    return build(cache, small=small), note


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """``--corpus`` and ``--cache``, as :func:`named_corpus` takes them."""
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default="main",
        help="main: training.image_corpus; holdout: training.holdout_corpus (other sources)",
    )
    parser.add_argument("--cache", default=None, help="the corpus's cache directory")


def load_eval_images(
    small: bool, cache: str | None, corpus_name: str = "main"
) -> tuple[list[EvalImage], list[EvalImage], dict[str, Any]]:
    corpus, note = named_corpus(corpus_name, cache, small)
    refs = [EvalImage(i.image_id, i.role, i.path.read_bytes(), i.kind) for i in corpus.references]
    negs = [EvalImage(i.image_id, i.role, i.path.read_bytes(), i.kind) for i in corpus.negatives]
    info = {
        "note": note,
        "corpus": corpus_name,
        "root": str(corpus.root),
        "references": len(refs),
        "hard_negatives": sum(n.role == "hard_negative" for n in negs),
        "distractors": sum(n.role == "distractor" for n in negs),
    }
    return refs, negs, info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate image matchers on the attack grid.")
    parser.add_argument("--small", action="store_true", help="use the small corpus")
    add_corpus_arguments(parser)
    parser.add_argument("--out", default=None, help="report directory (reports/images[/holdout])")
    parser.add_argument(
        "--matcher",
        action="append",
        help=f"registered name ({', '.join(MATCHERS)}) or module:factory; repeatable",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    matchers = [resolve_matcher(m)() for m in (args.matcher or ["naive"])]
    out = Path(
        args.out or ("reports/images/holdout" if args.corpus == "holdout" else "reports/images")
    )
    refs, negs, info = load_eval_images(args.small, args.cache, args.corpus)
    results = evaluate(matchers, refs, negs, progress=not args.no_progress)
    table = write_report(results, out, info)
    print(table)
    print(f"\nreport: {out / 'image_eval.md'} (+ .json, .png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
