"""Replaying verifier models on stored stage-2 measurements decides as verify() does."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

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
