"""The text classifier: fit on generated listings, then behaviour a reviewer would check."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from detector.classifier import (
    NUMERIC_FEATURE_NAMES,
    ListingFeatures,
    NgramTfidf,
    PreparedListings,
    TextModel,
    build_pipeline,
    price_features,
)
from training.text_corpus import generate_corpus
from training.train_text import corpus_brands


@pytest.fixture(scope="module")
def model() -> TextModel:
    listings = generate_corpus(2000, seed=11)
    y = np.array([item.label for item in listings])
    pipeline = build_pipeline(corpus_brands(), calibration_cv=3).fit(listings, y)
    return TextModel(pipeline, version="test")


def _listing(title: str, description: str = "", price: float | None = None) -> dict[str, object]:
    out: dict[str, object] = {"title": title, "description": description}
    if price is not None:
        out.update(
            price_amount=price,
            price_currency="USD",
            reference_price={"amount": 2000.0, "currency": "USD"},
        )
    return out


def test_pipeline_is_one_sklearn_pipeline_and_clones() -> None:
    pipeline = build_pipeline(corpus_brands())
    assert isinstance(pipeline, Pipeline)
    assert [name for name, _ in pipeline.steps] == ["features", "union", "clf"]
    cloned = clone(pipeline)
    assert cloned.get_params()["features__brands"] == pipeline.get_params()["features__brands"]
    assert not hasattr(cloned.named_steps["features"], "n_brands_")


def test_obfuscated_brand_and_cue_scores_higher_than_clean(model: TextModel) -> None:
    clean = _listing("Louis Vuitton Neverfull MM tote bag", "Bought in store, comes with box.")
    fake = _listing("L0uis Vu1tt0n Neverfull MM tote bag 1:1 mirror quality", "AAA top batch.")
    p_clean, p_fake = model.predict_proba([clean, fake])
    assert p_fake > p_clean + 0.3
    assert p_fake > 0.85


def test_negated_cue_scores_lower_than_cue(model: TextModel) -> None:
    genuine = _listing("Gucci Marmont bag", "100% authentic, not a replica. Receipt included.")
    replica = _listing("Gucci Marmont bag", "Replica, mirror quality. Message me on WhatsApp.")
    p_genuine, p_replica = model.predict_proba([genuine, replica])
    assert p_replica > p_genuine + 0.3


def test_explain_names_the_cue(model: TextModel) -> None:
    listing = _listing("Rolex Submariner replica watch", "super clone, AAA grade")
    terms = [term for term, value in model.explain(listing, top=8)]
    assert any(t.startswith("cue_") and "replica" in t for t in terms), terms
    assert all(value > 0 for _, value in model.explain(listing))
    assert len(model.explain(listing, top=3)) <= 3


def test_price_far_below_retail_raises_the_score(model: TextModel) -> None:
    near = _listing("Prada Re-Edition nylon bag", "Smoke free home.", price=1900.0)
    far = _listing("Prada Re-Edition nylon bag", "Smoke free home.", price=90.0)
    p_near, p_far = model.predict_proba([near, far])
    assert p_far > p_near
    assert price_features({"price_amount": 90.0, "reference_price": None}) == (0.0, 0.0)
    other_currency = {
        "price_amount": 1.0,
        "price_currency": "EUR",
        "reference_price": {"amount": 2000.0, "currency": "USD"},
    }
    assert price_features(other_currency) == (0.0, 0.0)


def test_accepts_objects_and_mappings_and_empty(model: TextModel) -> None:
    item = generate_corpus(5, seed=3)[0]
    from_object = model.predict_proba([item])
    from_mapping = model.predict_proba([item.to_dict()])
    assert from_object == pytest.approx(from_mapping)
    assert model.predict_proba([]).shape == (0,)
    assert 0.0 <= model.score(_listing("")) <= 1.0


def test_listing_features_normalise_once_and_name_columns() -> None:
    feats = ListingFeatures(brands=corpus_brands()).fit([])
    prepared = feats.transform([_listing("G.U.C.C.I belt", "rep 1:1")])
    assert isinstance(prepared, PreparedListings)
    assert prepared.texts == ["gucci belt\nrep 1:1"]
    row = dict(zip(NUMERIC_FEATURE_NAMES, prepared.numeric[0], strict=True))
    assert row["brand_obfuscated"] > 0
    assert row["cue_strong"] > 0


def test_char_ngrams_cover_cjk_and_count_exactly() -> None:
    texts = ["高仿 包包", "正品 包包", "高仿 手表"]
    vec = NgramTfidf(kind="char", ngram_range=(2, 3), min_df=1).fit(texts)
    terms = set(vec.terms_.tolist())
    assert "高仿" in terms and " 高仿" in terms
    counts = vec.counts(["高仿 高仿"]).toarray()[0]
    assert counts[list(vec.terms_).index("高仿")] == 2
    rows = vec.transform(texts)
    assert np.allclose(np.asarray(rows.multiply(rows).sum(axis=1)).ravel(), 1.0)
    assert vec.transform(["zzzz"]).nnz == 0


def test_word_ngrams_keep_one_to_one_and_bigrams() -> None:
    vec = NgramTfidf(kind="word", ngram_range=(1, 2), min_df=1).fit(["rep 1:1 top batch"])
    assert {"1:1", "top batch", "rep"} <= set(vec.terms_.tolist())


def test_analyse_scores_and_explains_a_batch_like_one_by_one(model: TextModel) -> None:
    batch = [
        _listing("Rolex Submariner replica watch", "super clone, AAA grade"),
        _listing("Louis Vuitton Neverfull MM tote bag", "Bought in store, comes with box."),
        _listing("", ""),
        _listing("  L0uis   Vu1tt0n  ", "1:1  mirror\tquality"),
        _listing("耐克 1:1 高仿 运动鞋", "莆田 工厂 同款"),
        _listing("Rolex Submariner replica watch", "super clone, AAA grade"),
    ]
    proba, explained = model.analyse(batch)
    assert np.array_equal(proba, model.predict_proba(batch))
    assert explained == [model.explain(item) for item in batch]
    assert explained[0] == explained[5]
    assert any(term.startswith("~") for term, _ in explained[0]), explained[0]
    empty_proba, empty_terms = model.analyse([])
    assert len(empty_proba) == 0 and empty_terms == []


def test_character_contributions_are_spread_over_whole_words(model: TextModel) -> None:
    # Every word of the normalised text that character n-grams touch is named "~word";
    # no name is a fragment of a word.
    listing = _listing("Rolex Submariner replica watch", "super clone, AAA grade")
    words = " ".join(
        PreparedListings.concat([model.pipeline.named_steps["features"].transform([listing])])
        .texts[0]
        .split()
    ).split()
    named = [term[1:] for term, _ in model.explain(listing, top=50) if term.startswith("~")]
    assert named and all(word in words for word in named), (named, words)


def test_a_listing_prepared_by_the_scorer_scores_and_explains_the_same(model: TextModel) -> None:
    from detector.text import CueMatcher, ListingText

    batch = [
        _listing("Rolex Submariner replica watch", "not a fake, super clone, AAA grade"),
        _listing("  L0uis   Vu1tt0n  ", "1:1  mirror\tquality"),
        _listing("", "耐克 1:1 高仿 运动鞋"),
        _listing("Nike Air Max", "", price=300.0),
    ]
    prepared = [
        {**item, "prepared": ListingText.of(str(item["title"]), str(item["description"]))}
        for item in batch
    ]
    proba, explained = model.analyse(prepared)
    assert np.array_equal(proba, model.predict_proba(batch))
    assert explained == [model.explain(item) for item in batch]
    # Cue spans found with another matcher are not reused; the normalised text still is.
    other = [
        {**item, "prepared": ListingText.of(str(item["title"]), str(item["description"]), cues)}
        for item, cues in zip(batch, [CueMatcher() for _ in batch], strict=True)
    ]
    assert np.array_equal(model.analyse(other)[0], proba)
