"""Training: held-out quality on a small run, the model card, CV that holds out whole groups,
the default model for a fresh checkout and the CLI commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from detector.artifacts import CARD_FILE, active_version, load_active, text_dir
from training.text_corpus import LabeledListing, generate_corpus
from training.train_text import (
    TrainResult,
    cross_validate,
    data_fingerprint,
    ensure_default_model,
    prepare,
    train,
)

try:
    import matplotlib  # noqa: F401

    HAVE_MPL = True
except ImportError:  # matplotlib is in the "eval" extra, not "test"
    HAVE_MPL = False


@pytest.fixture(scope="module")
def corpus() -> list[LabeledListing]:
    return generate_corpus(2000, seed=21)


@pytest.fixture(scope="module")
def trained(corpus: list[LabeledListing], tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    models = tmp_path_factory.mktemp("models")
    return train(
        corpus,
        models_dir=models,
        version="small",
        cv=False,
        plots=HAVE_MPL,
        progress=False,
        pipeline_params={"calibration_cv": 3},
        thresholds={"review": 0.5, "block": 0.9},
    )


def test_held_out_pr_auc_on_a_small_run(trained: TrainResult) -> None:
    # 1,600 training listings. At this size, corpus seeds 21, 3 and 8 gave 0.976, 0.976 and
    # 0.983 held out; 0.93 leaves room for seed and library noise while still failing a model
    # that lost a feature block or broke normalisation (the bar is 0.97 at full size).
    holdout = trained.card["metrics"]["holdout"]
    assert holdout["n"] == 400
    assert holdout["pr_auc"] >= 0.93
    assert holdout["roc_auc"] >= 0.93


def test_model_card_says_what_was_measured(
    trained: TrainResult, corpus: list[LabeledListing]
) -> None:
    assert trained.path is not None
    card = json.loads((trained.path / CARD_FILE).read_text())
    assert card["data"]["fingerprint_sha256"] == data_fingerprint(corpus)
    assert card["thresholds"] == {"review": 0.5, "block": 0.9}
    for name in ("review", "block"):
        at = card["metrics"]["holdout"]["at_thresholds"][name]
        assert {"precision", "recall", "f1", "threshold"} <= set(at)
    assert {"en", "zh"} <= set(card["metrics"]["holdout"]["per_language"])
    assert "genuine/negation" in card["metrics"]["holdout"]["per_scenario"]
    assert {"scikit-learn", "skops", "numpy"} <= set(card["libraries"])
    assert card["created_at"].endswith("Z")
    assert card["artifact"]["sha256"]
    if HAVE_MPL:
        for rel in card["plots"]:
            assert (trained.path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(card["plots"]) == 3


def test_scenario_is_never_a_feature(trained: TrainResult, corpus: list[LabeledListing]) -> None:
    sample = corpus[:50]
    relabelled = [replace(item, scenario="genuine/plain", label=0) for item in sample]
    assert np.array_equal(
        trained.model.predict_proba(sample), trained.model.predict_proba(relabelled)
    )


def test_fingerprint_changes_with_one_label(corpus: list[LabeledListing]) -> None:
    flipped = [replace(corpus[0], label=1 - corpus[0].label), *corpus[1:]]
    assert data_fingerprint(corpus) == data_fingerprint(list(corpus))
    assert data_fingerprint(flipped) != data_fingerprint(corpus)


def test_cross_validation_holds_out_languages_and_scenarios(
    trained: TrainResult, corpus: list[LabeledListing]
) -> None:
    sample = corpus[:800]
    y = np.array([item.label for item in sample])
    prepared = prepare(trained.model.pipeline, sample, progress=False)
    cv = cross_validate(
        trained.model.pipeline,
        prepared,
        y,
        [item.language for item in sample],
        [item.scenario for item in sample],
        folds=3,
        progress=False,
    )
    assert set(cv) == {"random", "leave_language_out", "leave_scenarios_out"}
    held = {f["held_out"] for f in cv["leave_language_out"]["folds"]}
    assert {"zh", "de"} <= held
    for fold in cv["leave_scenarios_out"]["folds"]:
        assert "counterfeit/" in fold["held_out"] and "genuine/" in fold["held_out"]
    assert cv["random"]["pr_auc_mean"] > 0.85


def test_default_model_is_built_once_and_rebuilt_when_incompatible(tmp_path: Path) -> None:
    logs: list[str] = []
    version = ensure_default_model(tmp_path, n=600, log=logs.append, progress=False)
    assert active_version(tmp_path) == version
    assert version.startswith("seed-600-7-")
    assert load_active(tmp_path).predict_proba([{"title": "replica bag"}]).shape == (1,)
    logs.clear()
    assert ensure_default_model(tmp_path, n=600, log=logs.append, progress=False) == version
    assert logs == []  # nothing rebuilt
    card_path = text_dir(tmp_path) / version / CARD_FILE
    card = json.loads(card_path.read_text())
    card["libraries"]["numpy"] = "1.0.0"
    card_path.write_text(json.dumps(card))
    assert ensure_default_model(tmp_path, n=600, log=logs.append, progress=False) == version
    assert any("building the default" in line for line in logs)
    assert load_active(tmp_path).card["libraries"]["numpy"] != "1.0.0"


def test_cli_models_list_promote_rollback(
    trained: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trained.path is not None
    models = trained.path.parent.parent
    assert main(["models", "--models-dir", str(models), "promote", "small"]) == 0
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    out = capsys.readouterr().out
    assert "* small" in out
    assert main(["models", "--models-dir", str(models), "rollback"]) == 1
    assert "nothing to roll back" in capsys.readouterr().err
    assert main(["models", "--models-dir", str(models), "promote", "nope"]) == 1
    assert main(["models", "--models-dir", str(tmp_path), "list"]) == 0


def test_card_compares_with_the_previous_model_and_review_labels(
    corpus: list[LabeledListing], trained: TrainResult
) -> None:
    import dataclasses

    reviewed = [dataclasses.replace(x, source="review") for x in corpus[:300]]
    result = train(
        reviewed + corpus[300:1200],
        cv=False,
        plots=False,
        progress=False,
        previous=trained.model,
    )
    metrics = result.card["metrics"]
    prev = metrics["previous_model"]
    assert prev["version"] == trained.version
    assert prev["holdout"]["n"] == metrics["holdout"]["n"]
    assert 0 < prev["holdout"]["pr_auc"] <= 1
    assert metrics["holdout_review_labels"]["n"] > 0
    assert prev["holdout_review_labels"]["n"] == metrics["holdout_review_labels"]["n"]
