"""Tests for the synthetic seed corpus generator and the labelled-listing loader."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from training.text_corpus import (
    FX_PER_USD,
    HARD_NEGATIVE_SCENARIOS,
    LANGUAGES,
    LabeledListing,
    ListingFormatError,
    corpus_stats,
    generate_corpus,
    load_listings,
    main,
    signal_terms,
    write_jsonl,
)

REPO = Path(__file__).resolve().parents[2]
N = 5000


@pytest.fixture(scope="module")
def corpus() -> list[LabeledListing]:
    return generate_corpus(N, seed=7)


def _digest(listings: list[LabeledListing]) -> str:
    payload = json.dumps([x.to_dict() for x in listings], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def test_deterministic_for_a_seed() -> None:
    a = generate_corpus(400, seed=3)
    assert _digest(a) == _digest(generate_corpus(400, seed=3))
    assert _digest(a) != _digest(generate_corpus(400, seed=4))


def test_independent_of_python_hash_seed() -> None:
    code = (
        "import hashlib, json; from training.text_corpus import generate_corpus;"
        "c = generate_corpus(300, seed=11);"
        "print(hashlib.sha256(json.dumps([x.to_dict() for x in c], ensure_ascii=False,"
        " sort_keys=True).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert digests == {_digest(generate_corpus(300, seed=11))}


def test_records_are_synthetic_and_well_formed(corpus: list[LabeledListing]) -> None:
    ids = [x.listing_id for x in corpus]
    assert len(set(ids)) == len(ids)
    for x in corpus:
        assert x.source == "synthetic"
        assert x.label in (0, 1)
        assert x.title.strip()
        assert x.price_currency in FX_PER_USD
        assert x.price_amount is not None and x.price_amount > 0
        if x.reference_price is not None:
            assert x.reference_price["currency"] == x.price_currency
        json.dumps(x.to_dict(), ensure_ascii=False)
    # currency magnitudes: an IDR price is thousands, a JPY price at least 100
    idr = [x.price_amount for x in corpus if x.price_currency == "IDR"]
    jpy = [x.price_amount for x in corpus if x.price_currency == "JPY"]
    assert idr and min(v for v in idr if v is not None) >= 1000
    assert jpy and min(v for v in jpy if v is not None) >= 100


def test_balance_and_languages(corpus: list[LabeledListing]) -> None:
    stats = corpus_stats(corpus)
    assert 0.43 <= stats["counterfeit_share"] <= 0.47
    per_lang = Counter(x.language for x in corpus)
    for lang in LANGUAGES:
        assert per_lang[lang] >= 0.03 * N, (lang, per_lang[lang])
        labels = Counter(x.label for x in corpus if x.language == lang)
        assert 0.3 < labels[1] / per_lang[lang] < 0.6, lang


def test_hard_negative_share(corpus: list[LabeledListing]) -> None:
    genuine = [x for x in corpus if x.label == 0]
    hard = [x for x in genuine if x.scenario in HARD_NEGATIVE_SCENARIOS]
    assert len(hard) / len(genuine) >= 0.40
    assert {x.scenario for x in hard} == set(HARD_NEGATIVE_SCENARIOS)
    text = " ".join(f"{x.title} {x.description}" for x in genuine).lower()
    for phrase in ("not a replica", "bukan kw", "不是高仿", "keine fälschung", "compatible with"):
        assert phrase in text, phrase


def test_variety_of_forms(corpus: list[LabeledListing]) -> None:
    fakes = [x for x in corpus if x.label == 1]
    titles = " ".join(x.title for x in fakes)
    assert any("\uff21" <= ch <= "\uff5a" for ch in titles)  # full-width letters
    assert any(unicodedata.name(ch, "").startswith("CYRILLIC") for ch in titles)
    assert any(0x1F170 <= ord(ch) <= 0x1F189 for ch in titles)  # squared emoji letters
    assert any(x.brand_claimed is None and x.reference_price for x in fakes)  # hidden brand
    ratios = [
        x.price_amount / x.reference_price["amount"]
        for x in fakes
        if x.reference_price and x.price_amount
    ]
    assert sum(r > 0.55 for r in ratios) / len(ratios) > 0.1  # fakes priced near retail
    assert sum(x.scenario == "counterfeit/no_cue" for x in fakes) / len(fakes) > 0.08
    words = [len(x.description.split()) for x in corpus]
    assert min(len(x.title.split()) for x in corpus) <= 3
    assert max(words) >= 120
    assert sum(w == 0 for w in words) / len(words) > 0.03
    assert sum(x.title.isupper() for x in corpus) > 0.02 * N


def _signal_vocabulary(analyzer: object) -> tuple[set[str], list[str]]:
    tokens: set[str] = set()
    cjk: list[str] = []
    for terms in signal_terms().values():
        for term in terms:
            parts = analyzer(term)  # type: ignore[operator]
            if len(parts) == 1:
                tokens.add(parts[0])
            if any(ord(ch) >= 0x2E80 for ch in term):
                cjk.append(term)
    return tokens, cjk


def test_token_leakage_is_bounded(corpus: list[LabeledListing]) -> None:
    """No token outside the declared cue vocabulary gives the label away."""
    docs = [f"{x.title}\n{x.description}" for x in corpus]
    y = np.array([x.label for x in corpus])
    cv = CountVectorizer(binary=True)
    counts = cv.fit_transform(docs)
    signal, cjk = _signal_vocabulary(cv.build_analyzer())
    vocab = cv.get_feature_names_out()
    support = np.asarray(counts.sum(axis=0)).ravel()
    positive = np.asarray(counts[y == 1].sum(axis=0)).ravel()
    p_fake = positive / np.maximum(support, 1)
    leaks = [
        (vocab[i], round(float(p_fake[i]), 3), int(support[i]))
        for i in np.flatnonzero(support > 0.01 * len(corpus))
        if max(p_fake[i], 1 - p_fake[i]) > 0.98
        and vocab[i] not in signal
        and not any(term in vocab[i] for term in cjk)
    ]
    assert leaks == []


def test_top_weighted_tokens_are_cues(corpus: list[LabeledListing]) -> None:
    docs = [f"{x.title}\n{x.description}" for x in corpus]
    y = np.array([x.label for x in corpus])
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=3)
    features = tfidf.fit_transform(docs)
    model = LogisticRegression(C=4.0, max_iter=2000).fit(features, y)
    vocab = tfidf.get_feature_names_out()
    signal, cjk = _signal_vocabulary(tfidf.build_analyzer())

    def is_signal(token: str) -> bool:
        return token in signal or any(term in token for term in cjk)

    counts = CountVectorizer(binary=True, vocabulary=vocab).fit_transform(docs)
    support = np.asarray(counts.sum(axis=0)).ravel()
    p_fake = np.asarray(counts[y == 1].sum(axis=0)).ravel() / np.maximum(support, 1)
    order = np.argsort(model.coef_[0])
    top_fake, top_genuine = order[::-1][:30], order[:30]
    assert sum(is_signal(vocab[i]) for i in top_fake) >= 15, [vocab[i] for i in top_fake]
    assert sum(is_signal(vocab[i]) for i in top_genuine) >= 12, [vocab[i] for i in top_genuine]
    artefacts = [
        vocab[i]
        for i in np.concatenate([top_fake, top_genuine])
        if not is_signal(vocab[i])
        and support[i] > 0.005 * len(corpus)
        and max(p_fake[i], 1 - p_fake[i]) > 0.98
    ]
    assert artefacts == []


def test_generation_is_fast() -> None:
    started = time.process_time()
    generate_corpus(2000, seed=1)
    assert time.process_time() - started < 2.0  # 20,000 must take < 20 s


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    listings = generate_corpus(60, seed=5)
    path = tmp_path / "c.jsonl"
    assert write_jsonl(listings, path) == 60
    assert load_listings(path) == listings


def test_csv_round_trip_and_label_words(tmp_path: Path) -> None:
    listings = generate_corpus(40, seed=5)
    path = tmp_path / "c.csv"
    fields = [f for f in listings[0].to_dict() if f != "reference_price"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[*fields, "reference_price_amount", "reference_price_currency"]
        )
        writer.writeheader()
        for x in listings:
            row = {k: v for k, v in x.to_dict().items() if k != "reference_price"}
            row["label"] = "counterfeit" if x.label else "Genuine"
            ref = x.reference_price
            row["reference_price_amount"] = ref["amount"] if ref else ""
            row["reference_price_currency"] = ref["currency"] if ref else ""
            writer.writerow(row)
    assert load_listings(path) == listings


def test_minimal_rows_get_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        'listing_id,title,label,reference_price\na1,Gucci belt,1,"{""amount"": 520,'
        ' ""currency"": ""usd""}"\n',
        encoding="utf-8",
    )
    (item,) = load_listings(path)
    assert item.description == "" and item.source == "unknown" and item.price_amount is None
    assert item.reference_price == {"amount": 520.0, "currency": "USD"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"listing_id": "b", "title": "x", "label": "maybe"}', "label must be"),
        ('{"listing_id": "b", "label": 1}', "missing required field 'title'"),
        ('{"listing_id": "b", "title": "x", "label": 1, "price_amount": "abc",'
         ' "price_currency": "USD"}', "price_amount must be a number"),
        ('{"listing_id": "b", "title": "x", "label": 1, "price_amount": 5}', "price_currency is"),
        ('{"listing_id": "b", "title": "x", "label": 1, "price_amount": 5,'
         ' "price_currency": "dollars"}', "ISO 4217"),
        ('{"listing_id": "a", "title": "x", "label": 0}', "duplicate listing_id 'a'"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)  # fmt: skip
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = '{"listing_id": "a", "title": "Nike Dunk Low", "label": "genuine"}'
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(ListingFormatError, match=message) as err:
        load_listings(path)
    assert "bad.jsonl:3:" in str(err.value)


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('listing_id,title,label\na,"multi\nline title",1\nb,ok,2\n', encoding="utf-8")
    with pytest.raises(ListingFormatError, match=r"bad\.csv:4: label must be"):
        load_listings(path)
    header = tmp_path / "nohead.csv"
    header.write_text("id,title,label\n1,x,1\n", encoding="utf-8")
    with pytest.raises(ListingFormatError, match=r"nohead\.csv:1: header lacks"):
        load_listings(header)
    with pytest.raises(ListingFormatError, match="unsupported file type"):
        load_listings(tmp_path / "x.parquet")


def test_cli_writes_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "seed.jsonl"
    assert main(["--n", "50", "--seed", "2", "--out", str(out)]) == 0
    assert load_listings(out) == generate_corpus(50, seed=2)
    assert '"hard_negative_share_of_genuine"' in capsys.readouterr().err
