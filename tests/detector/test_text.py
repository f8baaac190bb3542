"""Tests for detector.text: normalisation with offsets, brand spans, cue spans, features."""

from __future__ import annotations

import subprocess
import sys

import pytest

from detector.text import (
    TEXT_FEATURE_NAMES,
    BrandMatcher,
    BrandTerms,
    CueMatcher,
    ListingText,
    Span,
    default_cue_matcher,
    find_spans,
    normalize,
    text_features,
)

BRANDS = [
    BrandTerms("gucci", ["Gucci", "古驰", "グッチ", "Гуччи"]),
    BrandTerms("louis-vuitton", ["Louis Vuitton", "LV", "LouisVuitton", "路易威登"]),
    BrandTerms("chanel", ["Chanel", "香奈儿"]),
    BrandTerms("apple", ["Apple", "iPhone"]),
    BrandTerms("dior", ["Dior", "迪奥"]),
    BrandTerms("burberry", ["Burberry"]),
    BrandTerms("calvin-klein", ["Calvin Klein", "CK"]),
    BrandTerms("nike", ["Nike", "耐克"]),
    BrandTerms("supreme", ["Supreme"]),
    BrandTerms("prada", ["Prada"]),
    BrandTerms("the-north-face", ["The North Face", "TNF"]),
    BrandTerms("hermes", ["Hermès"]),
    BrandTerms("rolex", ["Rolex", "劳力士"]),
    BrandTerms("apc", ["A.P.C."]),
    BrandTerms("guess", ["Guess"]),
    BrandTerms("cartier", ["Cartier"]),
    BrandTerms("balenciaga", ["Balenciaga"]),
]


@pytest.fixture(scope="module")
def brands() -> BrandMatcher:
    return BrandMatcher(BRANDS)


@pytest.fixture(scope="module")
def cues() -> CueMatcher:
    return default_cue_matcher()


def _check_offsets(text: str, spans: list[Span]) -> None:
    for sp in spans:
        assert 0 <= sp.start < sp.end <= len(text)
        assert text[sp.start : sp.end] == sp.text


def brand_hits(bm: BrandMatcher, text: str) -> list[tuple[str, str, str]]:
    spans = bm.find(text)
    _check_offsets(text, spans)
    return [(sp.label, sp.text, sp.detail) for sp in spans]


def cue_hits(cm: CueMatcher, text: str) -> list[tuple[str, str, str]]:
    spans = cm.find(text)
    _check_offsets(text, spans)
    return [(sp.kind, sp.label, sp.text) for sp in spans]


# ------------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Guссi bag", "gucci bag"),  # Cyrillic с
        ("Сhаnеl flap", "chanel flap"),  # Cyrillic С, а, е
        ("ΡRΑDΑ", "prada"),  # Greek Ρ, Α
        ("G.U.C.C.I belt", "gucci belt"),
        ("C-H-A-N-E-L", "chanel"),
        ("g u c c i", "gucci"),
        ("L V wallet", "lv wallet"),
        ("L*V", "lv"),
        ("G_U_C_C_I", "gucci"),
        ("L0uis Vuitt0n", "louis vuitton"),
        ("Ch@nel", "chanel"),
        ("$upreme", "supreme"),
        ("Pr4d4", "prada"),
        ("R0LEX", "rolex"),
        ("ＧＵＣＣＩ", "gucci"),
        ("🅖🅤🅒🅒🅘", "gucci"),
        ("🅶🆄🅲🅲🅸", "gucci"),
        ("𝐆𝐔𝐂𝐂𝐈", "gucci"),
        ("𝓖𝓾𝓬𝓬𝓲", "gucci"),
        ("Ⓖⓤⓒⓒⓘ", "gucci"),
        ("⒢⒰⒞⒞⒤", "gucci"),
        ("ɢᴜᴄᴄɪ", "gucci"),
        ("Gu\u200bcci", "gucci"),
        ("Hermès", "hermes"),
        ("Herme\u0300s", "hermes"),
        ("Gucci™ bag", "gucci™ bag"),
        ("STRASSE  ß", "strasse ss"),
    ],
)
def test_normalize_folds_obfuscations(raw: str, folded: str) -> None:
    assert normalize(raw).text == folded


@pytest.mark.parametrize(
    "text",
    [
        "iPhone 15 case",
        "100% authentic",
        "Size 42, 5 x 3 x 2 cm",
        "buy a T shirt",
        "MP3 player 4K 5G",
        "price $100",
    ],
)
def test_normalize_keeps_numbers_and_ordinary_words(text: str) -> None:
    assert normalize(text).text == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "Сумка Гуччи оригинал, новая, с чеком",
        "Продаю кроссовки, состояние отличное, коробка есть",
        "Τσάντα δερμάτινη καινούργια",
        "Очень хорошее качество АААА",
    ],
)
def test_real_russian_and_greek_not_mangled(text: str) -> None:
    nt = normalize(text)
    assert not any(ch.isascii() and ch.isalpha() for ch in nt.text)
    assert nt.text == " ".join(text.split()).casefold() or nt.text.isalpha() is False


def test_cjk_thai_pass_through() -> None:
    for text in ["正品路易威登包包", "グッチのバッグ", "กระเป๋า กุชชี่ ของแท้", "구찌 가방 정품"]:
        assert normalize(text).text == text


def test_offset_map_roundtrip() -> None:
    text = "Brand new  🅖🅤🅒🅒🅘 and G.U.C.C.I, Guссi, Ｌ０ｕｉｓ, Herme\u0300s ß"
    nt = normalize(text)
    assert len(nt.starts) == len(nt.ends) == len(nt.text) == len(nt.flags)
    for i in range(len(nt.text)):
        assert 0 <= nt.starts[i] < nt.ends[i] <= len(text)
    # every token's original slice folds back to the token
    for word in ("gucci", "hermes"):
        i = nt.text.index(word)
        assert normalize(nt.original_slice(i, i + len(word))).text == word
    assert nt.original_slice(nt.text.index("gucci"), nt.text.index("gucci") + 5) == "🅖🅤🅒🅒🅘"


def test_homoglyph_table_is_lazy() -> None:
    code = (
        "import sys, detector.text as t; "
        "assert 'confusable_homoglyphs.confusables' not in sys.modules; "
        "t.normalize('Guссi'); "
        "assert 'confusable_homoglyphs.confusables' in sys.modules; "
        "assert 'fastapi' not in sys.modules and 'sqlalchemy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------- brands


@pytest.mark.parametrize(
    ("text", "brand", "matched", "detail"),
    [
        ("Gucci Marmont bag", "gucci", "Gucci", "exact"),
        ("GUCCI", "gucci", "GUCCI", "exact"),
        ("Authentic Louis Vuitton Speedy 30", "louis-vuitton", "Louis Vuitton", "exact"),
        ("LV monogram", "louis-vuitton", "LV", "exact"),
        ("#LouisVuitton", "louis-vuitton", "LouisVuitton", "exact"),
        ("Hermes Birkin", "hermes", "Hermes", "exact"),
        ("A.P.C. jeans", "apc", "A.P.C", "exact"),
        ("The North Face puffer", "the-north-face", "The North Face", "exact"),
        ("Guссi bag", "gucci", "Guссi", "obfuscated"),
        ("G.U.C.C.I belt", "gucci", "G.U.C.C.I", "obfuscated"),
        ("g u c c i belt", "gucci", "g u c c i", "obfuscated"),
        ("L V wallet", "louis-vuitton", "L V", "obfuscated"),
        ("L*V wallet", "louis-vuitton", "L*V", "obfuscated"),
        ("C-H-A-N-E-L flap", "chanel", "C-H-A-N-E-L", "obfuscated"),
        ("L0uis Vuitt0n neverfull", "louis-vuitton", "L0uis Vuitt0n", "obfuscated"),
        ("Ch@nel No 5", "chanel", "Ch@nel", "obfuscated"),
        ("$upreme box logo", "supreme", "$upreme", "obfuscated"),
        ("D10R saddle", "dior", "D10R", "obfuscated"),
        ("N1KE dunk", "nike", "N1KE", "obfuscated"),
        ("Bur-berry scarf", "burberry", "Bur-berry", "obfuscated"),
        ("🅖🅤🅒🅒🅘 bag", "gucci", "🅖🅤🅒🅒🅘", "obfuscated"),
        ("𝐆𝐔𝐂𝐂𝐈 bag", "gucci", "𝐆𝐔𝐂𝐂𝐈", "obfuscated"),
        ("Ⓖⓤⓒⓒⓘ", "gucci", "Ⓖⓤⓒⓒⓘ", "obfuscated"),
        ("ＧＵＣＣＩ バッグ", "gucci", "ＧＵＣＣＩ", "exact"),
        ("Louis Vuiton speedy", "louis-vuitton", "Louis Vuiton", "fuzzy:1"),
        ("Burbery trench", "burberry", "Burbery", "fuzzy:1"),
        ("Balenciagga triple s", "balenciaga", "Balenciagga", "fuzzy:1"),
        ("Balencaiga track", "balenciaga", "Balencaiga", "fuzzy:2"),
        ("GucciBag", "gucci", "Gucci", "exact"),
        ("Сумка Гуччи оригинал", "gucci", "Гуччи", "exact"),
        ("正品路易威登包包", "louis-vuitton", "路易威登", "exact"),
        ("香奈儿双C耳环", "chanel", "香奈儿", "exact"),
        ("グッチのバッグ", "gucci", "グッチ", "exact"),
        ("LV包包", "louis-vuitton", "LV", "exact"),
    ],
)
def test_brand_found(
    brands: BrandMatcher, text: str, brand: str, matched: str, detail: str
) -> None:
    assert (brand, matched, detail) in brand_hits(brands, text)


@pytest.mark.parametrize(
    "text",
    [
        "Applewood cutting board",
        "Diorama kit for model railway",
        "Pineapple slicer",
        "Guci bag",  # 4 letters: exact matching only
        "Channel 5 news mug",
        "Guest towel set",
        "Courier bag from a carrier",
        "Supremely comfortable sofa",
        "Prado 150 roof rack",
        "Hermetic jar",
        "Dolby headphones",
        "Slv 42",
        "Glove size XL V-neck",
    ],
)
def test_brand_not_found(brands: BrandMatcher, text: str) -> None:
    assert brand_hits(brands, text) == []


def test_brand_several_mentions_offsets(brands: BrandMatcher) -> None:
    text = "Guссi × L0uis Vuitt0n × 路易威登 collab, not Dior(ama) but DIOR."
    hits = brand_hits(brands, text)
    assert [h[0] for h in hits] == ["gucci", "louis-vuitton", "louis-vuitton", "dior", "dior"]


def test_brand_matcher_accepts_normalized_text(brands: BrandMatcher) -> None:
    nt = normalize("G.U.C.C.I belt")
    assert brands.find(nt) == brands.find("G.U.C.C.I belt")


def test_brand_matcher_custom_fuzzy_exclude() -> None:
    bm = BrandMatcher([BrandTerms("chanel", ["Chanel"])], fuzzy_exclude=[])
    assert brand_hits(bm, "channel") == [("chanel", "channel", "fuzzy:1")]
    assert brand_hits(BrandMatcher([BrandTerms("chanel", ["Chanel"])]), "channel") == []


# ------------------------------------------------------------------------------------ cues


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Replica bag", "replica"),
        ("best reps on the market", "reps"),
        ("1:1 quality", "one_to_one"),
        ("AAA+ grade", "aaa"),
        ("mirror quality", "mirror"),
        ("top batch", "batch"),
        ("super fake", "super_fake"),
        ("UA version", "ua"),
        ("same factory as the original", "same_factory"),
        ("factory direct", "factory_direct"),
        ("OEM", "oem"),
        ("no box", "no_box"),
        ("dupe of the famous bag", "dupe"),
        ("inspired by a famous house", "inspired"),
        ("look-alike", "lookalike"),
        ("WhatsApp me", "whatsapp"),
        ("DM me for more", "dm_me"),
        ("réplica perfecta", "replica"),
        ("imitación de lujo", "knockoff"),
        ("copie de luxe", "copy"),
        ("réplique montre", "replica"),
        ("Fälschung", "fake"),
        ("Nachbildung", "knockoff"),
        ("tas KW super", "kw"),
        ("barang tiruan", "knockoff"),
        ("barang palsu", "fake"),
        ("ori reject", "ori_reject"),
        ("langsung pabrik", "factory_direct"),
        ("réplica primeira linha", "aaa"),
        ("replica di alta qualità", "replica"),
        ("реплика люкс", "replica"),
        ("高仿包包", "replica"),
        ("复刻", "fuke"),
        ("精仿", "replica"),
        ("LV A货", "replica"),
        ("超A货", "super_fake"),
        ("顶级版本", "top_grade_zh"),
        ("专柜品质", "top_grade_zh"),
        ("原单", "yuandan"),
        ("莆田鞋", "putian"),
        ("工厂直销", "factory_direct"),
        ("加微信", "wechat"),
        ("スーパーコピー", "master_copy"),
        ("짝퉁", "fake"),
    ],
)
def test_cue_found(cues: CueMatcher, text: str, label: str) -> None:
    hits = cue_hits(cues, text)
    assert ("cue", label) in [(k, lab) for k, lab, _ in hits], hits


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("100% authentic, not a replica", "replica"),
        ("not a replica", "replica"),
        ("no replica", "replica"),
        ("100% authentic, not fake", "fake"),
        ("this is NOT a copy", "copy"),
        ("definitely not a cheap knockoff", "knockoff"),
        ("isn't a fake", "fake"),
        ("no fakes, no reps", "reps"),
        ("no es réplica", "replica"),
        ("sin imitaciones", "knockoff"),
        ("pas une copie", "copy"),
        ("ce n'est pas une contrefaçon", "fake"),
        ("keine Fälschung", "fake"),
        ("nicht gefälscht", "fake"),
        ("bukan KW", "kw"),
        ("bukan barang palsu", "fake"),
        ("não é réplica", "replica"),
        ("non è una replica", "replica"),
        ("не реплика", "replica"),
        ("не подделка", "fake"),
        ("不是高仿", "replica"),
        ("非高仿", "replica"),
        ("绝对不是什么高仿", "replica"),
        ("コピー品ではありません", "copy"),
        ("짝퉁 아님", "fake"),
        ("Gucci-inspired? No: genuine Gucci with receipt", "inspired"),
    ],
)
def test_negated_cue(cues: CueMatcher, text: str, label: str) -> None:
    hits = cue_hits(cues, text)
    assert ("negated_cue", label) in [(k, lab) for k, lab, _ in hits], hits
    assert ("cue", label) not in [(k, lab) for k, lab, _ in hits], hits


def test_negation_propagates_over_or(cues: CueMatcher) -> None:
    hits = cue_hits(cues, "not a replica or fake")
    assert [k for k, _, _ in hits] == ["negated_cue", "negated_cue"]
    hits = cue_hits(cues, "不是高仿A货")
    assert [k for k, _, _ in hits] == ["negated_cue", "negated_cue"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("not authentic, it is a replica", "replica"),  # comma ends the negation
        ("No scratches on this replica", "replica"),  # the 'no' belongs to 'scratches'
        ("Chanel No 5 replica", "replica"),  # 'No 5' is a name
        ("No box, replica", "replica"),
        ("not original but a great 1:1", "one_to_one"),
        ("非常好的高仿", "replica"),  # 非常 = very, not 非
    ],
)
def test_not_negated(cues: CueMatcher, text: str, label: str) -> None:
    hits = cue_hits(cues, text)
    assert ("cue", label) in [(k, lab) for k, lab, _ in hits], hits


@pytest.mark.parametrize(
    ("text", "label", "category"),
    [
        ("100% authentic", "authentic", "authentic"),
        ("genuine leather, original", "authentic", "authentic"),
        ("with receipt", "receipt", "receipt"),
        ("proof of purchase available", "receipt", "receipt"),
        ("invoice included", "receipt", "receipt"),
        ("pre-owned", "used", "used"),
        ("second hand", "used", "used"),
        ("compatible with iPhone 15", "accessory", "accessory"),
        ("fits AirPods Pro", "fits", "accessory"),
        ("authorized dealer", "authorized", "authorized"),
        ("factura incluida", "receipt", "receipt"),
        ("d'occasion", "used", "used"),
        ("gebraucht, mit Rechnung", "receipt", "receipt"),
        ("bekas, ada nota", "receipt", "receipt"),
        ("正品 有发票", "receipt", "receipt"),
        ("二手", "used", "used"),
        ("适用于iPhone", "accessory", "accessory"),
        ("официальный дилер", "authorized", "authorized"),
    ],
)
def test_genuine_cue(cues: CueMatcher, text: str, label: str, category: str) -> None:
    spans = cues.find(text)
    _check_offsets(text, spans)
    assert any(
        sp.kind == "genuine_cue" and sp.label == label and sp.detail == category for sp in spans
    ), spans


@pytest.mark.parametrize(
    "text",
    [
        "faux leather jacket",
        "fake fur collar",
        "imitation leather sofa",
        "2 kW heater",
        "AAA batteries included",
        "copy of receipt included",
        "sales rep sample",
        "fits true to size",
        "Adidas replica jersey",  # official fan-shirt term: only a weak cue
    ],
)
def test_cue_false_friends(cues: CueMatcher, text: str) -> None:
    strong = [sp for sp in cues.find(text) if sp.kind == "cue" and cues.cue(sp.label).strong]
    assert strong == []


def test_cue_offsets_in_messy_text(cues: CueMatcher) -> None:
    text = "ＮＥＷ！！ 𝐑𝐞𝐩𝐥𝐢𝐜𝐚  bag —  M I R R O R   quality，不是高仿，是原单。DM  me"
    spans = cues.find(text)
    _check_offsets(text, spans)
    assert [(sp.kind, sp.label) for sp in spans] == [
        ("cue", "replica"),
        ("cue", "mirror"),
        ("negated_cue", "replica"),
        ("cue", "yuandan"),
        ("cue", "dm_me"),
    ]


def test_lexicon_covers_languages_and_categories(cues: CueMatcher) -> None:
    cats = {c.category for c in cues.cues.values()}
    assert {"replica", "grade", "factory", "packaging", "dupe", "contact"} <= cats
    assert {"authentic", "receipt", "used", "accessory", "authorized"} <= cats
    assert all(0 < c.weight <= 1 for c in cues.cues.values())


# -------------------------------------------------------------------------------- hard negatives


def test_hard_negative_phone_case(brands: BrandMatcher) -> None:
    f = text_features(
        "Case compatible with iPhone 15", "Silicone, fits iPhone 15 Pro", brands=brands
    )
    assert f["brand_mentions"] == 2
    assert f["brand_accessory"] == 2
    assert f["accessory_context"] >= 3
    assert f["cue_strong"] == 0


def test_hard_negative_authentic_not_replica(brands: BrandMatcher) -> None:
    f = text_features("Gucci Marmont, 100% authentic, not a replica", "", brands=brands)
    assert f["cue_strong"] == 0 and f["negated_cue"] == 1
    assert f["genuine_authentic"] == 1


def test_hard_negative_inspired_question(brands: BrandMatcher) -> None:
    f = text_features(
        "Gucci-inspired? No: genuine Gucci with receipt",
        "Bought in Milan, pre-owned.",
        brands=brands,
    )
    assert f["cue_weight"] == 0 and f["negated_cue"] == 1
    assert f["genuine_receipt"] == 1 and f["genuine_used"] == 1
    assert f["brand_mentions"] == 2 and f["brand_distinct"] == 1


def test_features_of_a_counterfeit(brands: BrandMatcher) -> None:
    f = text_features(
        "L0uis Vuitt0n Neverfull 1:1 mirror quality",
        "Same factory as original. AAA. WhatsApp for more. 高仿 LV 包包 no box. "
        "Guссi style belt too",
        brands=brands,
    )
    assert set(f) == set(TEXT_FEATURE_NAMES)
    assert f["cue_strong"] >= 5
    assert f["cue_grade"] >= 3
    assert f["cue_factory"] == 1 and f["cue_contact"] == 1 and f["cue_packaging"] == 1
    assert f["brand_obfuscated"] == 2
    assert f["brand_style"] == 1
    assert f["title_cue_strong"] == 2 and f["title_brand"] == 1
    assert f["obfuscated_tokens"] >= 3


def test_features_without_brand_matcher() -> None:
    f = text_features("Replica bag", "")
    assert f["cue_replica"] == 1 and f["brand_mentions"] == 0


def test_find_spans_merges_and_sorts(brands: BrandMatcher) -> None:
    text = "不是高仿, 正品 Gucci with receipt"
    spans = find_spans(text, brands)
    _check_offsets(text, spans)
    assert [sp.kind for sp in spans] == ["negated_cue", "genuine_cue", "brand", "genuine_cue"]


def test_a_listing_text_prepared_once_gives_the_same_spans_and_features(
    brands: BrandMatcher, cues: CueMatcher
) -> None:
    title, description = "G.U.C.C.I bag 1:1 不是高仿", "not a replica, 正品 with receipt"
    text = ListingText.of(title, description, cues)
    assert text.title.original == title and text.description.original == description
    for nt, found, raw in (
        (text.title, text.title_cues, title),
        (text.description, text.description_cues, description),
    ):
        assert find_spans(nt, brands, cues, cue_spans=found) == find_spans(raw, brands, cues)
    shared = text_features(
        text.title,
        text.description,
        brands=brands,
        cues=cues,
        cue_spans=(text.title_cues, text.description_cues),
    )
    assert shared == text_features(title, description, brands=brands, cues=cues)
    assert ListingText.of("", "", cues).title_cues == ()


def test_fast_enough(brands: BrandMatcher, cues: CueMatcher) -> None:
    import time

    text = (
        "Brand new Louis Vuiton Neverfull MM tote, mirror quality 1:1 with dust bag. Same "
        "factory as the original, top batch leather. Not used, no scratches. DM me for more "
        "photos or WhatsApp. Also: Gucci Marmont, Chanel flap, Apple iPhone 15 cases. 高仿 "
    ) * 2
    start = time.perf_counter()
    for _ in range(20):
        find_spans(text, brands, cues)
    assert (time.perf_counter() - start) / 20 < 0.02  # generous: shared CI machines
