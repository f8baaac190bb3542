"""The verifier's learners: fitted trees exported as JSON score exactly like scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from detector import verify
from training import train_verifier as tv


def _rows(n_groups: int = 30, seed: int = 0) -> list[tv.PairRow]:
    """Synthetic feature rows: copies reproduce the reference's structure, negatives miss some."""
    rng = np.random.default_rng(seed)
    names = list(verify.FEATURES)
    rows = []
    for g in range(n_groups):
        for label, kind in ((1, "stamp_logo"), (1, "stamp_logo"), (0, "stamp_no_logo")):
            x = rng.random(len(names))
            missing = rng.uniform(0.0, 0.3) if label else rng.uniform(0.2, 1.0)
            x[names.index("worst_missing_small")] = missing
            x[names.index("ref_edges_reproduced")] = 1.0 - missing / 2
            flat = rng.uniform(0.0, 0.2) if label else rng.uniform(0.1, 1.0)
            x[names.index("flattened")] = flat
            rows.append(tv.PairRow(f"g{g}", label, kind, "none", True, tuple(float(v) for v in x)))
    return rows


@pytest.mark.parametrize("learner", tv.LEARNERS)
def test_exported_model_scores_like_sklearn(learner: str) -> None:
    rows = _rows()
    model, threshold, stats = tv.fit(rows, learner, foldings=2)
    payload = tv.export_model(model, threshold, stats)
    exported = verify._Model(payload)
    x = np.array([r.features for r in rows])
    ours = np.array([exported.score(v) for v in x])
    assert np.allclose(ours, model.predict_proba(x)[:, 1], atol=1e-9)
    assert len(stats["threshold_per_folding"]) == 2
    assert 0.5 <= threshold <= 0.99


def _rows_rising_then_falling(feature: str, n_groups: int = 40) -> list[tv.PairRow]:
    """Rows where, in the data, copies sit at middle values of ``feature`` and negatives at both
    ends: an unconstrained learner rewards the rise from low to middle values."""
    rng = np.random.default_rng(1)
    col = list(verify.FEATURES).index(feature)
    rows = []
    for g in range(n_groups):
        for label in (1, 1, 0, 0):
            x = rng.random(len(verify.FEATURES))
            if label:
                x[col] = rng.uniform(0.3, 0.6)
            else:
                x[col] = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.75, 1.0)
            kind = "stamp_logo" if label else "stamp_no_logo"
            rows.append(tv.PairRow(f"g{g}", label, kind, "none", True, tuple(float(v) for v in x)))
    return rows


@pytest.mark.parametrize("feature", ["worst_missing_small", "flattened"])
def test_monotone_learner_never_rewards_missing_structure(feature: str) -> None:
    rows = _rows_rising_then_falling(feature)
    base = np.median(np.array([r.features for r in rows]), axis=0)
    col = list(verify.FEATURES).index(feature)
    grid = np.repeat(base[None, :], 21, axis=0)
    grid[:, col] = np.linspace(0.0, 1.0, 21)
    # on these rows the unconstrained learner does reward more missing structure somewhere ...
    free, _, _ = tv.fit(rows, "gbdt")
    assert np.any(np.diff(free.predict_proba(grid)[:, 1]) > 1e-3)
    # ... the monotone one never does
    model, _, _ = tv.fit(rows, "monotone-hgb")
    scores = model.predict_proba(grid)[:, 1]
    assert np.all(np.diff(scores) <= 1e-12)
