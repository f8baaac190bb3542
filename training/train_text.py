"""Fit, cross-validate, evaluate and save the text classifier.

``train(listings)`` is the one entry point: it splits off a stratified held-out set, fits the
pipeline of :mod:`detector.classifier` on the rest, measures it on the held-out set (PR-AUC,
ROC-AUC, Brier score, precision/recall/F1 at the serving thresholds, per language and per
scenario), runs cross-validation that is NOT flattering (besides random folds: whole languages
held out, and whole scenarios held out), draws the plots, and writes a versioned artifact with
its model card. Any extra labelled listings (reviewer decisions, a real labelled file) are
passed in the same ``listings`` sequence; nothing here assumes the synthetic corpus.

Cross-validation reuses the listing features computed once (normalisation, cue and brand scans:
the expensive, stateless part) and refits everything that learns (vocabularies, IDF, scaler,
regression) inside every fold. It scores with the uncalibrated regression: the sigmoid
calibration is monotone, so ranking metrics (PR-AUC, ROC-AUC) are unchanged.

``ensure_default_model(models_dir)`` gives ``fakeguard serve`` a model on a fresh checkout: if no
compatible active model exists it trains one reproducibly from the synthetic seed corpus and
promotes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from detector.artifacts import (
    ArtifactError,
    library_versions,
    load_active,
    save_artifact,
)
from detector.classifier import (
    NUMERIC_FEATURE_NAMES,
    PRICE_FEATURE_NAMES,
    PreparedListings,
    TextModel,
    build_pipeline,
)
from training.text_corpus import DATA_DIR, LabeledListing, generate_corpus

__all__ = [
    "DEFAULT_THRESHOLDS",
    "TrainResult",
    "corpus_brands",
    "data_fingerprint",
    "ensure_default_model",
    "evaluate",
    "train",
]

DEFAULT_THRESHOLDS: Final[dict[str, float]] = {"review": 0.5, "block": 0.85}
DEFAULT_SEED: Final = 7
DEFAULT_N: Final = 20000
_CHUNK: Final = 500
_PRICE_COLUMNS: Final = [NUMERIC_FEATURE_NAMES.index(n) for n in PRICE_FEATURE_NAMES]

Log = Callable[[str], None]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _quiet(_: str) -> None:
    return None


def corpus_brands() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Brands and their written forms from the seed corpus's brand bank (name, aliases, 中文)."""
    raw = json.loads((DATA_DIR / "brands.json").read_text(encoding="utf-8"))
    return tuple(
        (str(b["name"]), (str(b["name"]), *map(str, b["aliases"]), *map(str, b["zh"])))
        for b in raw["brands"]
    )


def data_fingerprint(listings: Sequence[LabeledListing]) -> str:
    """sha256 of the listings as canonical JSON lines, in order."""
    digest = hashlib.sha256()
    for item in listings:
        digest.update(json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Metrics


def _at_threshold(y: IntArray, p: FloatArray, threshold: float) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {
        "threshold": threshold,
        "precision": round(float(prec), 4),
        "recall": round(float(rec), 4),
        "f1": round(float(f1), 4),
        "flagged_share": round(float(pred.mean()) if len(pred) else 0.0, 4),
    }


def _ranking(y: IntArray, p: FloatArray) -> dict[str, float | None]:
    if len(set(y.tolist())) < 2:
        return {"pr_auc": None, "roc_auc": None}
    return {
        "pr_auc": round(float(average_precision_score(y, p)), 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
    }


def evaluate(
    y: IntArray,
    p: FloatArray,
    thresholds: Mapping[str, float],
    languages: Sequence[str | None] = (),
    scenarios: Sequence[str | None] = (),
) -> dict[str, Any]:
    """Held-out metrics: ranking, Brier, per threshold, per language, per scenario.

    Per scenario (a scenario holds one class): ``pr_auc`` of that scenario against every
    listing of the other class, the mean score, and the share at or above each threshold
    (recall for counterfeit scenarios, false-positive rate for genuine ones).
    """
    out: dict[str, Any] = {"n": len(y), "positives": int(y.sum())}
    out.update(_ranking(y, p))
    out["brier"] = round(float(brier_score_loss(y, p)), 4) if len(y) else None
    out["at_thresholds"] = {k: _at_threshold(y, p, t) for k, t in thresholds.items()}
    if languages:
        langs = np.asarray([lang or "unknown" for lang in languages], dtype=object)
        per: dict[str, Any] = {}
        for lang in sorted(set(langs.tolist())):
            mask = langs == lang
            per[lang] = {"n": int(mask.sum()), **_ranking(y[mask], p[mask])}
        out["per_language"] = per
    if scenarios:
        scen = np.asarray([s or "unknown" for s in scenarios], dtype=object)
        per_s: dict[str, Any] = {}
        for name in sorted(set(scen.tolist())):
            mask = scen == name
            label = round(float(y[mask].mean()))
            vs = mask | (y != label)
            entry: dict[str, Any] = {
                "n": int(mask.sum()),
                "label": label,
                "pr_auc_vs_other_class": _ranking(y[vs], p[vs])["pr_auc"],
                "mean_score": round(float(p[mask].mean()), 4),
            }
            for k, t in thresholds.items():
                entry[f"share_at_{k}"] = round(float((p[mask] >= t).mean()), 4)
            per_s[name] = entry
        out["per_scenario"] = per_s
    return out


# --------------------------------------------------------------------------------------------
# Cross-validation on precomputed listing features


def _fold_scores(
    pipeline: Pipeline, prepared: PreparedListings, y: IntArray, train: Any, test: Any
) -> FloatArray:
    union = clone(pipeline.named_steps["union"])
    lr = clone(pipeline.named_steps["clf"].estimator)
    x_train = union.fit_transform(prepared.take(train))
    lr.fit(x_train, y[train])
    scores: FloatArray = lr.decision_function(union.transform(prepared.take(test)))
    return scores


def _cv_summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    values = [f["pr_auc"] for f in folds if f.get("pr_auc") is not None]
    rocs = [f["roc_auc"] for f in folds if f.get("roc_auc") is not None]
    return {
        "folds": folds,
        "pr_auc_mean": round(float(np.mean(values)), 4) if values else None,
        "pr_auc_min": round(float(np.min(values)), 4) if values else None,
        "roc_auc_mean": round(float(np.mean(rocs)), 4) if rocs else None,
    }


def _scenario_groups(scenarios: Sequence[str | None], n_groups: int, seed: int) -> list[list[str]]:
    """Whole scenarios dealt into groups so that each group holds both classes."""
    names = sorted({s for s in scenarios if s})
    rng = np.random.default_rng(seed)
    fake = [s for s in names if s.startswith("counterfeit/")]
    genuine = [s for s in names if not s.startswith("counterfeit/")]
    rng.shuffle(fake)
    rng.shuffle(genuine)
    groups: list[list[str]] = [[] for _ in range(n_groups)]
    for i, s in enumerate(fake):
        groups[i % n_groups].append(s)
    for i, s in enumerate(genuine):
        groups[(n_groups - 1 - i) % n_groups].append(s)
    return [g for g in groups if g]


def cross_validate(
    pipeline: Pipeline,
    prepared: PreparedListings,
    y: IntArray,
    languages: Sequence[str | None],
    scenarios: Sequence[str | None],
    *,
    seed: int = DEFAULT_SEED,
    folds: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Three cross-validations, each refitting everything that learns per fold.

    ``random``: stratified k-fold (in-distribution, optimistic). ``leave_language_out``: train
    without one language, test on it (how far the model carries to text it has not seen;
    mixed-language listings count as their own language, so ``en`` held out still leaves
    ``en+zh``). ``leave_scenarios_out``: whole generator scenarios held out in groups (does the
    model catch a counterfeit *pattern* it never saw, and spare a genuine pattern it never saw).
    """
    from tqdm import tqdm

    plan: list[tuple[str, str, Any, Any]] = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
        plan.append(("random", f"fold{i}", tr, te))
    langs = np.asarray([lang or "unknown" for lang in languages], dtype=object)
    for lang in sorted(set(langs.tolist())):
        te = np.flatnonzero(langs == lang)
        if len(set(y[te].tolist())) == 2 and len(te) < len(y):
            plan.append(("leave_language_out", lang, np.flatnonzero(langs != lang), te))
    scen = np.asarray([s or "" for s in scenarios], dtype=object)
    if any(scen):
        for group in _scenario_groups(scenarios, folds, seed):
            mask = np.isin(scen, group)
            te = np.flatnonzero(mask)
            if len(set(y[te].tolist())) == 2:
                plan.append(("leave_scenarios_out", "+".join(group), np.flatnonzero(~mask), te))
    results: dict[str, list[dict[str, Any]]] = {}
    for kind, name, tr, te in tqdm(plan, desc="cross-validation", disable=not progress):
        scores = _fold_scores(pipeline, prepared, y, tr, te)
        entry: dict[str, Any] = {"held_out": name, "n": len(te), **_ranking(y[te], scores)}
        results.setdefault(kind, []).append(entry)
    return {kind: _cv_summary(entries) for kind, entries in results.items()}


# --------------------------------------------------------------------------------------------
# Plots


def write_plots(
    out_dir: Path, y: IntArray, p: FloatArray, thresholds: Mapping[str, float]
) -> list[str]:
    """PR curve, reliability diagram and confusion matrices (PNG, Agg backend); paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []

    fig, ax = plt.subplots(figsize=(5, 4.5))
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec, lw=1.5, label=f"PR-AUC {average_precision_score(y, p):.3f}")
    for k, t in thresholds.items():
        m = _at_threshold(y, p, t)
        ax.plot(m["recall"], m["precision"], "o", label=f"{k} >= {t}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (held out)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    path = out_dir / "precision_recall.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path))

    fig, ax = plt.subplots(figsize=(5, 4.5))
    frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.plot(mean_pred, frac, "o-", label=f"Brier {brier_score_loss(y, p):.3f}")
    ax.set(xlabel="predicted P(counterfeit)", ylabel="observed share counterfeit")
    ax.set_title("Calibration (held out, quantile bins)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    path = out_dir / "calibration.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path))

    fig, axes = plt.subplots(1, len(thresholds), figsize=(4.2 * len(thresholds), 4))
    axes_list = list(np.atleast_1d(axes))
    for ax, (k, t) in zip(axes_list, thresholds.items(), strict=True):
        cm = confusion_matrix(y, (p >= t).astype(int), labels=[0, 1])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                color="white" if v > cm.max() / 2 else "black",
            )
        ax.set_xticks([0, 1], ["genuine", "counterfeit"])
        ax.set_yticks([0, 1], ["genuine", "counterfeit"])
        ax.set(xlabel="predicted", ylabel="true", title=f"{k} (p >= {t})")
    path = out_dir / "confusion_matrix.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(str(path))
    return paths


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    """What :func:`train` produced: the model (with its card), and where it was written."""

    model: TextModel
    card: dict[str, Any]
    version: str
    path: Path | None = None
    plots: list[str] = field(default_factory=list)


def prepare(
    pipeline: Pipeline, listings: Sequence[Any], *, progress: bool = True
) -> PreparedListings:
    """Run the pipeline's stateless first step over the listings in chunks, with a progress bar."""
    from tqdm import tqdm

    features = pipeline.named_steps["features"].fit(listings)
    parts = [
        features.transform(listings[i : i + _CHUNK])
        for i in tqdm(
            range(0, len(listings), _CHUNK),
            desc="normalise + lexicon",
            unit="chunk",
            disable=not progress,
        )
    ]
    return PreparedListings.concat(parts)


def train(
    listings: Sequence[LabeledListing],
    *,
    models_dir: str | Path | None = None,
    version: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    test_size: float = 0.2,
    seed: int = DEFAULT_SEED,
    cv: bool = True,
    cv_folds: int = 4,
    plots: bool = True,
    brands: Sequence[tuple[str, Sequence[str]]] | None = None,
    pipeline_params: Mapping[str, Any] | None = None,
    data_description: Mapping[str, Any] | None = None,
    price_dropout: float = 0.3,
    progress: bool = True,
    log: Log = _quiet,
    previous: TextModel | None = None,
) -> TrainResult:
    """Fit on a stratified split, evaluate on the rest, optionally cross-validate and save.

    Parameters
    ----------
    listings : sequence of LabeledListing
        All labelled data (seed corpus, real files, reviewer decisions ...). ``scenario`` is used
        only to slice the evaluation, never as a feature.
    models_dir : path, optional
        When given, the artifact is written to ``<models_dir>/text/<version>/`` (not promoted:
        see :mod:`training.registry`).
    thresholds : mapping, optional
        Serving thresholds, default ``{"review": 0.5, "block": 0.85}``; stored in the card.
    brands : optional
        Brand names for the brand features; default :func:`corpus_brands`.
    price_dropout : float
        Share of training listings whose price features are hidden (augmentation against
        leaning on price); the held-out set is scored with and without prices.
    previous : TextModel, optional
        The model this one would replace (e.g. the active one). It is scored on the same
        held-out listings, so the card shows the metrics before and after, overall and on the
        held-out reviewer labels (``source == "review"``).
    """
    thresholds = dict(thresholds or DEFAULT_THRESHOLDS)
    if len(listings) < 20:
        raise ValueError("need at least 20 labelled listings")
    y_all = np.asarray([int(item.label) for item in listings], dtype=np.int64)
    if len(set(y_all.tolist())) != 2:
        raise ValueError("listings must contain both labels")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    fingerprint = data_fingerprint(listings)
    created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    version = version or f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{fingerprint[:8]}"
    params = dict(pipeline_params or {})
    brand_terms = tuple(brands) if brands is not None else corpus_brands()
    pipeline = build_pipeline(brand_terms, **params)
    log(f"training text model {version} on {len(listings)} listings")

    t0 = time.perf_counter()
    prepared = prepare(pipeline, listings, progress=progress)
    timings["features_s"] = round(time.perf_counter() - t0, 2)

    idx = np.arange(len(listings))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_size, stratify=y_all, random_state=seed
    )
    t0 = time.perf_counter()
    log(f"fitting on {len(train_idx)}, holding out {len(test_idx)}")
    train_prepared = prepared.take(train_idx)
    if price_dropout > 0:
        # Augmentation: hide the price from a share of the training listings so the text
        # features must carry the decision on their own (synthetic fakes are nearly all cheap;
        # real ones are not, and many listings come without a reference price).
        hide = np.random.default_rng(seed).random(len(train_idx)) < price_dropout
        train_prepared.numeric[np.ix_(np.flatnonzero(hide), np.asarray(_PRICE_COLUMNS))] = 0.0
    pipeline[1:].fit(train_prepared, y_all[train_idx])
    timings["fit_s"] = round(time.perf_counter() - t0, 2)
    test_prepared = prepared.take(test_idx)
    p_test = np.asarray(pipeline[1:].predict_proba(test_prepared)[:, 1], dtype=float)
    y_test = y_all[test_idx]
    languages = [listings[i].language for i in test_idx]
    scenarios = [listings[i].scenario for i in test_idx]
    metrics: dict[str, Any] = {
        "holdout": evaluate(y_test, p_test, thresholds, languages, scenarios)
    }
    test_prepared.numeric[:, _PRICE_COLUMNS] = 0.0
    p_no_price = np.asarray(pipeline[1:].predict_proba(test_prepared)[:, 1], dtype=float)
    metrics["holdout_without_price"] = {
        **_ranking(y_test, p_no_price),
        "note": "same held-out listings with price and reference price removed",
    }
    from_reviews = np.asarray([listings[i].source == "review" for i in test_idx], dtype=bool)
    if from_reviews.any():
        metrics["holdout_review_labels"] = {
            "n": int(from_reviews.sum()),
            **_ranking(y_test[from_reviews], p_test[from_reviews]),
        }
    if previous is not None:
        p_prev = np.asarray(previous.predict_proba([listings[i] for i in test_idx]), dtype=float)
        metrics["previous_model"] = {
            "version": previous.version,
            "holdout": evaluate(y_test, p_prev, thresholds, languages, scenarios),
        }
        if from_reviews.any():
            metrics["previous_model"]["holdout_review_labels"] = {
                "n": int(from_reviews.sum()),
                **_ranking(y_test[from_reviews], p_prev[from_reviews]),
            }
        log(
            f"previous model {previous.version} on the same held-out listings: PR-AUC "
            f"{metrics['previous_model']['holdout']['pr_auc']}"
        )
    hold = metrics["holdout"]
    log(f"held-out PR-AUC {hold['pr_auc']}, ROC-AUC {hold['roc_auc']}, Brier {hold['brier']}")
    log(f"held-out PR-AUC without prices {metrics['holdout_without_price']['pr_auc']}")

    if cv:
        t0 = time.perf_counter()
        metrics["cv"] = cross_validate(
            pipeline,
            prepared,
            y_all,
            [item.language for item in listings],
            [item.scenario for item in listings],
            seed=seed,
            folds=cv_folds,
            progress=progress,
        )
        timings["cv_s"] = round(time.perf_counter() - t0, 2)
        for kind, summary in metrics["cv"].items():
            log(f"CV {kind}: PR-AUC mean {summary['pr_auc_mean']}, min {summary['pr_auc_min']}")

    union = pipeline.named_steps["union"]
    card: dict[str, Any] = {
        "kind": "text",
        "created_at": created_at,
        "thresholds": thresholds,
        "data": {
            "fingerprint_sha256": fingerprint,
            "n": len(listings),
            "n_train": len(train_idx),
            "n_holdout": len(test_idx),
            "counterfeit_share": round(float(y_all.mean()), 4),
            "sources": sorted({item.source for item in listings}),
            "split": {"kind": "stratified random", "test_size": test_size, "seed": seed},
            **dict(data_description or {}),
        },
        "model": {
            "pipeline": [name for name, _ in pipeline.steps],
            "blocks": {name: int(step.n_features_out_) for name, step in union.transformer_list},
            "params": {"brands": len(brand_terms), "price_dropout": price_dropout, **params},
            "classifier": "LogisticRegression (liblinear, L2) + sigmoid calibration",
            "trained_on": "train split only: the held-out metrics describe this exact model",
        },
        "metrics": metrics,
        "timings": timings,
        "libraries": library_versions(),
    }
    model = TextModel(pipeline, version=version, card=card)
    result = TrainResult(model=model, card=card, version=version)
    if models_dir is not None:
        out = save_artifact(models_dir, version, pipeline, card)
        result.path = out
        if plots:
            result.plots = write_plots(out / "plots", y_test, p_test, thresholds)
            card["plots"] = [str(Path(p).relative_to(out)) for p in result.plots]
            _update_card(out, card)
        timings["total_s"] = round(time.perf_counter() - started, 2)
        _update_card(out, {"timings": timings})
        model.card = json.loads((out / "card.json").read_text(encoding="utf-8"))
        result.card = model.card
        log(f"wrote {out}")
    else:
        timings["total_s"] = round(time.perf_counter() - started, 2)
    return result


def _update_card(version_dir: Path, updates: Mapping[str, Any]) -> None:
    from detector.artifacts import read_card, write_json_atomic

    card = read_card(version_dir)
    card.update(updates)
    write_json_atomic(version_dir / "card.json", card)


# --------------------------------------------------------------------------------------------
# Default model for a fresh checkout


def ensure_default_model(
    models_dir: str | Path,
    *,
    n: int = DEFAULT_N,
    seed: int = DEFAULT_SEED,
    log: Log = print,
    progress: bool = True,
) -> str:
    """The active version, after building and promoting a default model if none is usable.

    "Usable" means the registry names a version that loads under the running library versions.
    Otherwise a model is trained reproducibly from ``generate_corpus(n, seed)`` (same data, same
    fingerprint, same model for the same library versions), saved as
    ``seed-<n>-<seed>-<fingerprint>-sklearn<version>`` and promoted. No cross-validation: this is
    the first-run path and must stay well under a minute.
    """
    from training.registry import promote

    try:
        model = load_active(models_dir)
        return model.version
    except ArtifactError as exc:
        log(f"fakeguard: no usable text model ({exc}); building the default one")
    t0 = time.perf_counter()
    listings = generate_corpus(n, seed)
    fingerprint = data_fingerprint(listings)
    version = f"seed-{n}-{seed}-{fingerprint[:8]}-sklearn{library_versions()['scikit-learn']}"
    try:
        from detector.artifacts import load_artifact

        load_artifact(models_dir, version)  # built before (e.g. rolled back from): reuse it
    except ArtifactError:
        _discard_broken(models_dir, version)
        train(
            listings,
            models_dir=models_dir,
            version=version,
            seed=seed,
            cv=False,
            data_description={"corpus": f"generate_corpus(n={n}, seed={seed})", "synthetic": True},
            progress=progress,
            log=log,
        )
    promote(models_dir, version, note="default model built from the seed corpus")
    log(f"fakeguard: default text model {version} active ({time.perf_counter() - t0:.0f} s)")
    return version


def _discard_broken(models_dir: str | Path, version: str) -> None:
    import shutil

    from detector.artifacts import text_dir

    vdir = text_dir(models_dir) / version
    if vdir.exists():
        shutil.rmtree(vdir)
