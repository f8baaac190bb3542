"""Artifacts: skops round trip, strict loading, registry pointer and hot reload."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from detector.artifacts import (
    CARD_FILE,
    MODEL_FILE,
    ActiveModel,
    ArtifactError,
    active_version,
    list_versions,
    load_active,
    load_artifact,
    registry_stamp,
    save_artifact,
    text_dir,
)
from detector.classifier import TextModel, build_pipeline
from training.registry import promote, rollback
from training.text_corpus import generate_corpus
from training.train_text import corpus_brands


@pytest.fixture(scope="module")
def fitted() -> Pipeline:
    listings = generate_corpus(1200, seed=5)
    y = np.array([item.label for item in listings])
    pipeline: Pipeline = build_pipeline(corpus_brands(), calibration_cv=3).fit(listings, y)
    return pipeline


@pytest.fixture
def models(tmp_path: Path, fitted: Pipeline) -> Path:
    save_artifact(tmp_path, "v1", fitted, {"thresholds": {"review": 0.5, "block": 0.85}})
    save_artifact(tmp_path, "v2", fitted, {"thresholds": {"review": 0.4, "block": 0.9}})
    return tmp_path


def _sample() -> list[dict[str, object]]:
    return [item.to_dict() for item in generate_corpus(40, seed=99)]


def _rewrite_card(models: Path, version: str, **changes: object) -> None:
    path = text_dir(models) / version / CARD_FILE
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


def _resign(models: Path, version: str) -> None:
    """Make the card's sha256 match the (replaced) model file, as an attacker could."""
    import hashlib

    vdir = text_dir(models) / version
    card = json.loads((vdir / CARD_FILE).read_text())
    card["artifact"]["sha256"] = hashlib.sha256((vdir / MODEL_FILE).read_bytes()).hexdigest()
    (vdir / CARD_FILE).write_text(json.dumps(card))


def test_round_trip_gives_equal_predictions(models: Path, fitted: Pipeline) -> None:
    loaded = load_artifact(models, "v1")
    assert loaded.version == "v1"
    assert loaded.card["libraries"]["scikit-learn"]
    assert loaded.thresholds == {"review": 0.5, "block": 0.85}
    sample = _sample()
    expected = TextModel(fitted).predict_proba(sample)
    assert np.array_equal(loaded.predict_proba(sample), expected)
    assert loaded.explain(sample[0]) == TextModel(fitted).explain(sample[0])


def test_file_is_a_skops_zip_without_pickles(models: Path) -> None:
    with zipfile.ZipFile(text_dir(models) / "v1" / MODEL_FILE) as zf:
        names = zf.namelist()
        schema = json.loads(zf.read("schema.json"))
    assert "schema.json" in names
    assert "pickle" not in json.dumps(schema).lower()


def test_refuses_a_tampered_library_version(models: Path) -> None:
    path = text_dir(models) / "v1" / CARD_FILE
    card = json.loads(path.read_text())
    card["libraries"]["scikit-learn"] = "0.24.2"
    path.write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.24\.2"):
        load_artifact(models, "v1")
    listed = {v["version"]: v for v in list_versions(models)}
    assert listed["v1"]["compatible"] is False
    assert listed["v2"]["compatible"] is True


def test_refuses_another_classifier_schema(models: Path) -> None:
    _rewrite_card(models, "v1", model_schema=1)
    with pytest.raises(ArtifactError, match="schema 1"):
        load_artifact(models, "v1")


def test_refuses_a_corrupt_file(models: Path) -> None:
    model_path = text_dir(models) / "v1" / MODEL_FILE
    data = bytearray(model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(models, "v1")
    model_path.write_bytes(b"not a zip at all")
    _resign(models, "v1")
    with pytest.raises(ArtifactError, match="cannot load"):
        load_artifact(models, "v1")
    (text_dir(models) / "v2" / CARD_FILE).write_text("{")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_artifact(models, "v2")


def test_refuses_an_untrusted_type(models: Path, fitted: Pipeline) -> None:
    evil = Pipeline([("run", FunctionTransformer(func=eval)), ("rest", fitted)])
    sio.dump(evil, text_dir(models) / "v1" / MODEL_FILE)
    _resign(models, "v1")
    with pytest.raises(ArtifactError, match=r"untrusted types: .*eval"):
        load_artifact(models, "v1")


def test_versions_are_immutable(models: Path, fitted: Pipeline) -> None:
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(models, "v1", fitted, {})
    with pytest.raises(ArtifactError, match="invalid version"):
        save_artifact(models, "../x", fitted, {})


def test_promote_and_rollback_change_the_active_version(models: Path) -> None:
    with pytest.raises(ArtifactError, match="no active"):
        load_active(models)
    assert registry_stamp(models) is None
    assert promote(models, "v1") is None
    stamp1 = registry_stamp(models)
    assert active_version(models) == "v1"
    assert promote(models, "v2") == "v1"
    assert active_version(models) == "v2"
    assert registry_stamp(models) != stamp1
    assert load_active(models).version == "v2"
    assert rollback(models) == "v1"
    assert active_version(models) == "v1"
    with pytest.raises(ArtifactError, match="nothing to roll back"):
        rollback(models)


def test_promote_refuses_an_unloadable_version(models: Path) -> None:
    _rewrite_card(models, "v2", libraries={"scikit-learn": "0.1", "skops": "0", "numpy": "0"})
    with pytest.raises(ArtifactError):
        promote(models, "v2")
    with pytest.raises(ArtifactError, match="no model card"):
        promote(models, "v9")
    assert active_version(models) is None


def test_active_model_picks_up_a_promotion_without_restart(models: Path) -> None:
    promote(models, "v1")
    errors: list[ArtifactError] = []
    live = ActiveModel(models, poll_seconds=0.0, on_error=errors.append)
    assert live.get().version == "v1"
    promote(models, "v2")
    assert live.get().version == "v2"
    # a broken promotion keeps the last good model serving
    shutil.copy(text_dir(models) / "v1" / MODEL_FILE, text_dir(models) / "v1" / "backup")
    (text_dir(models) / "v1" / MODEL_FILE).write_bytes(b"junk")
    registry = text_dir(models) / "registry.json"
    data = json.loads(registry.read_text())
    data["active"] = "v1"
    registry.write_text(json.dumps(data) + " ")
    assert live.get().version == "v2"
    assert errors and live.last_error is errors[-1]
