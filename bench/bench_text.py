"""Text scoring throughput: our pipeline vs a naive TF-IDF + LogisticRegression baseline.

``python -m bench.bench_text [--train N] [--test N] [--repeats R]``

Both models are fitted in this run on the same synthetic listings, then timed on one thread
(BLAS/OpenMP pools limited to 1) scoring held-out listings in batches and one at a time. Prints
the median listings/s of each, the ratio, where our time goes, and both models' held-out PR-AUC
(the baseline is fast because it does almost nothing: no normalisation, no lexicon, no brands).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Median listings/s over ``repeats`` runs of ``fn`` (which scores ``n`` listings)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--one-by-one", type=int, default=400, help="listings scored singly")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from detector.classifier import TextModel, build_pipeline
    from training.text_corpus import generate_corpus
    from training.train_text import corpus_brands

    with threadpool_limits(limits=1):
        train = generate_corpus(args.train, seed=7)
        test = generate_corpus(args.test, seed=1234)
        y_train = np.array([item.label for item in train])
        y_test = np.array([item.label for item in test])
        print(f"fitting on {len(train)} synthetic listings, scoring {len(test)} (one thread)")

        t0 = time.perf_counter()
        ours = TextModel(build_pipeline(corpus_brands()).fit(train, y_train))
        fit_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
        baseline.fit([f"{x.title}\n{x.description}" for x in train], y_train)
        fit_base = time.perf_counter() - t0

        def base_score(items: Sequence[Any]) -> Any:
            return baseline.predict_proba([f"{x.title}\n{x.description}" for x in items])[:, 1]

        # warm caches (lexicon tables, vocabularies) before timing
        ours.predict_proba(test[:50])
        base_score(test[:50])

        batches = _batches(test, args.batch)
        singles = test[: args.one_by_one]
        results = {
            "ours batch": _rate(
                lambda: [ours.predict_proba(b) for b in batches], len(test), args.repeats
            ),
            "ours one-by-one": _rate(
                lambda: [ours.predict_proba([x]) for x in singles], len(singles), args.repeats
            ),
            "baseline batch": _rate(
                lambda: [base_score(b) for b in batches], len(test), args.repeats
            ),
            "baseline one-by-one": _rate(
                lambda: [base_score([x]) for x in singles], len(singles), args.repeats
            ),
        }
        pipe = ours.pipeline
        features = pipe.named_steps["features"]
        prepare_rate = _rate(lambda: [features.transform(b) for b in batches], len(test), 3)
        prepared = [features.transform(b) for b in batches]
        rest_rate = _rate(lambda: [pipe[1:].predict_proba(p) for p in prepared], len(test), 3)
        pr_ours = average_precision_score(y_test, ours.predict_proba(test))
        pr_base = average_precision_score(y_test, base_score(test))

    print(f"fit: ours {fit_ours:.1f} s, baseline {fit_base:.1f} s")
    print(f"{'':22}{'listings/s (median of ' + str(args.repeats) + ')':>30}")
    for name, rate in results.items():
        print(f"{name:22}{rate:>30,.0f}")
    print(
        f"ratio ours/baseline: batch {results['ours batch'] / results['baseline batch']:.2f}, "
        f"one-by-one {results['ours one-by-one'] / results['baseline one-by-one']:.2f}"
    )
    print(
        f"ours, batch, by stage: normalise+lexicon+brands {prepare_rate:,.0f}/s, "
        f"n-grams+regression+calibration {rest_rate:,.0f}/s"
    )
    print(
        f"target 2,000 listings/s (batch): {'met' if results['ours batch'] >= 2000 else 'NOT met'}"
    )
    print(f"held-out PR-AUC (synthetic): ours {pr_ours:.4f}, baseline {pr_base:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
