"""`fakeguard train --from-reviews` learns from reviewers' decisions stored in the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from tests.api.conftest import Api


def decide(api: Api, listing_id: str, title: str, label: str) -> None:
    r = api.call(
        "POST",
        "/v1/listings/score",
        json={"listing_id": listing_id, "seller_id": "s", "title": title},
    )
    assert r.status_code == 200, r.text
    items = api.call("GET", "/v1/review/queue", params={"limit": 500}).json()["items"]
    item = next(i for i in items if i["listing_id"] == listing_id)
    r = api.call("POST", f"/v1/review/{item['id']}/decision", json={"label": label})
    assert r.status_code == 200, r.text


def test_train_from_reviews_uses_the_labels_and_compares_with_the_active_model(
    api: Api, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.brand("Acme", review_threshold=0.0, block_threshold=1.0)  # everything naming Acme: review
    decide(api, "R1", "Acme bag 1:1 replica top batch", "counterfeit")
    decide(api, "R2", "Acme bag, original receipt, pre-owned", "genuine")
    decide(api, "R3", "Acme wallet", "unsure")  # unsure is not a label
    out = tmp_path / "models"
    out.mkdir()
    for item in models_dir.iterdir():  # the active model to compare with
        if item.is_dir():
            import shutil

            shutil.copytree(item, out / item.name)
        else:
            (out / item.name).write_bytes(item.read_bytes())
    monkeypatch.setenv("FAKEGUARD_DATABASE_URL", api.settings.db_url)
    monkeypatch.setenv("FAKEGUARD_DATA_DIR", str(tmp_path / "data"))
    code = main(
        [
            "train",
            "--from-reviews",
            "--with-seed-corpus",
            "--n",
            "600",
            "--no-cv",
            "--no-plots",
            "--models-dir",
            str(out),
            "--no-promote",
        ]
    )
    assert code == 0
    cards = [json.loads(p.read_text()) for p in out.glob("text/*/card.json")]
    card = max(cards, key=lambda c: c["created_at"])
    assert card["data"]["review_labels"] == 2
    assert "review" in card["data"]["sources"]
    assert card["metrics"]["previous_model"]["holdout"]["n"] == card["metrics"]["holdout"]["n"]
