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


def _rows_with_paint_regime(
    regime_negatives_per_group: int, n_groups: int = 60
) -> list[tv.PairRow]:
    """Rows of :func:`_rows`, plus captioned pairs (``missing_under_paint`` near 1) where the
    copies miss more structure than copies elsewhere (the caption hides part of the mark) and
    the look-alikes miss still more: separable within the regime, not by the global threshold."""
    rng = np.random.default_rng(2)
    names = list(verify.FEATURES)
    rows = _rows(n_groups)
    for g in range(n_groups):
        for label in (1,) + (0,) * regime_negatives_per_group:
            x = rng.random(len(names))
            x[names.index("missing_under_paint")] = rng.uniform(0.95, 1.0)
            missing = rng.uniform(0.4, 0.65) if label else rng.uniform(0.8, 1.0)
            x[names.index("worst_missing_small")] = missing
            x[names.index("ref_edges_reproduced")] = 1.0 - missing / 2
            x[names.index("flattened")] = rng.uniform(0.0, 0.2)
            kind = "stamp_logo" if label else "stamp_other_logo"
            rows.append(tv.PairRow(f"g{g}", label, kind, "text", True, tuple(float(v) for v in x)))
    # the plain rows of _rows sit outside the regime
    return [
        r
        if r.attack == "text"
        else tv.PairRow(
            r.group,
            r.label,
            r.kind,
            r.attack,
            r.aligned,
            tuple(
                v * 0.5 if i == names.index("missing_under_paint") else v
                for i, v in enumerate(r.features)
            ),
        )
        for r in rows
    ]


def test_paint_regime_gets_its_own_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    learner = tv._new_model

    def small(name: str = "gbdt") -> object:  # the thresholds are under test, not the learner
        return learner(name).set_params(n_estimators=40)

    monkeypatch.setattr(tv, "_new_model", small)
    rows = _rows_with_paint_regime(regime_negatives_per_group=3)
    model, threshold, stats = tv.fit(rows, "gbdt", foldings=2, paint_regime=True)
    paint = stats["paint_threshold"]
    regime = stats["paint_regime_pairs"]
    assert regime["hard_negatives"] == 180 and regime["positives"] == 60
    # the regime's look-alikes are told apart at a lower threshold than the whole set needs
    assert 0.5 <= paint < threshold
    assert (
        regime["oof_acceptance_positives_at_paint_threshold"]
        > regime["oof_acceptance_positives_at_threshold"]
    )
    payload = tv.export_model(model, threshold, stats, paint)
    exported = verify._Model(payload)
    assert exported.threshold_for({"missing_under_paint": 0.95}) == paint
    assert exported.threshold_for({"missing_under_paint": 0.5}) == threshold
    assert exported.threshold_for({}) == threshold
    # without the option, or with too few hard negatives in the regime: one threshold
    _, _, plain = tv.fit(rows, "gbdt")
    assert "paint_threshold" not in plain
    few = _rows_with_paint_regime(regime_negatives_per_group=1)
    _, _, sparse = tv.fit(few, "gbdt", paint_regime=True)
    assert "paint_threshold" not in sparse
    legacy = {k: v for k, v in payload.items() if k != "paint_threshold"}
    assert verify._Model(legacy).threshold_for({"missing_under_paint": 1.0}) == threshold
