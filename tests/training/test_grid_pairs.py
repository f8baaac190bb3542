"""Replaying verifier models on stored stage-2 measurements decides as verify() does."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from detector import verify
from training import grid_pairs


def _payload(names: list[str]) -> dict[str, Any]:
    """One stump: accepted (score ~1) when diff_fraction <= 0.1, else rejected (score ~0)."""
    return {
        "version": verify.MODEL_VERSION,
        "features": names,
        "init": 0.0,
        "learning_rate": 1.0,
        "threshold": 0.5,
        "trees": [
            {
                "feature": [names.index("diff_fraction"), -2, -2],
                "threshold": [0.1, -2.0, -2.0],
                "left": [1, -1, -1],
                "right": [2, -1, -1],
                "value": [0.0, 10.0, -10.0],
            }
        ],
    }


def _cand(ref: str, **feats: float) -> dict[str, Any]:
    return {"reference": ref, "features": {"diff_fraction": 0.0, **feats}}


def test_replay_counts_hits_false_matches_vetoes_and_the_candidate_cap() -> None:
    # a model over fewer features than the current verifier still replays (its own list)
    model = grid_pairs.StoredModel(_payload(["log_inliers", "diff_fraction"]))
    positives = [
        {
            "query": "r1",
            "attack": "mirror",
            "candidates": [_cand("r9", diff_fraction=0.5), _cand("r1")],
        },
        {"query": "r2", "attack": "mirror", "candidates": [_cand("r2", diff_fraction=0.5)]},
        {"query": "r3", "attack": "text", "candidates": [_cand("r3", colour_lost=0.9)]},
        {"query": "r4", "attack": "text", "candidates": [_cand("r4", flattened=0.9)]},
        {
            "query": "r5",
            "attack": "text",
            "candidates": [_cand(f"x{i}", diff_fraction=0.5) for i in range(5)] + [_cand("r5")],
        },
        {"query": "r6", "attack": "text", "candidates": []},
    ]
    negatives = [
        {"query": "n1", "attack": None, "candidates": [_cand("r1")]},
        {"query": "n2", "attack": None, "candidates": [_cand("r2", diff_fraction=0.3)]},
        {"query": "n3", "attack": None, "candidates": [_cand("r3", flattened=0.8)]},
        {"query": "n4", "attack": None, "candidates": [{"reference": "r4", "features": {}}]},
    ]
    r = grid_pairs.score(model, positives, negatives, cap=5)
    assert (r.hits["mirror"], r.queries["mirror"]) == (1, 2)
    assert (r.hits["text"], r.queries["text"]) == (0, 4)  # vetoes, 6th candidate, no candidate
    assert r.false_matches == [("n1", ["r1"])] and r.negatives == 4
    assert grid_pairs.score(model, positives, [], cap=6).hits["text"] == 1


def test_replay_matches_verify_on_a_real_pair() -> None:
    from tests.detector.test_verify import ATTACKS, _bytes, _product

    reference = verify.prepare(_bytes(_product("star"), "JPEG", quality=92))
    text = resources.files("detector.data").joinpath(verify.MODEL_FILE).read_text()
    model = grid_pairs.StoredModel(json.loads(text))
    for query_img in (ATTACKS["rotate"](_product("star")), _product("bars")):
        query = verify.prepare_query(_bytes(query_img))
        feats, _ = verify.measure(query, reference)
        assert model.accepts(feats) == verify.verify(query, reference).accepted


def test_collect_reads_the_corpus_it_is_told(monkeypatch: Any, tmp_path: Any) -> None:
    """`collect --corpus holdout` collects on the holdout corpus (its builder, its root), the
    default on the main one; the builders are the evaluation's own."""
    from pathlib import Path

    from training import eval_images, holdout_corpus, image_corpus

    built: list[tuple[str, str | None]] = []

    def builder(name: str) -> Any:
        def build(cache: str | None, small: bool = False) -> image_corpus.Corpus:
            built.append((name, cache))
            return image_corpus.Corpus(Path(tmp_path) / name, ())

        return build

    monkeypatch.setattr(holdout_corpus, "build_holdout", builder("holdout"))
    monkeypatch.setattr(image_corpus, "build_corpus", builder("main"))
    collected: list[Path] = []
    monkeypatch.setattr(
        grid_pairs, "collect", lambda root, jobs, out, workers: collected.append(root) or 0
    )
    out = str(tmp_path / "n.jsonl")
    grid_pairs.main(["collect", "--corpus", "holdout", "--negatives", "--out", out])
    grid_pairs.main(["collect", "--cache", "C", "--negatives", "--out", out])
    assert built == [("holdout", None), ("main", "C")]
    assert collected == [Path(tmp_path) / "holdout", Path(tmp_path) / "main"]
    with pytest.raises(ValueError, match="holdout"):
        eval_images.named_corpus("other", None)
