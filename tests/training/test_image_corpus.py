"""Corpus specs on a made-up catalogue (offline); the real fetch and build only under -m slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from training import image_corpus as C

TINY = C.Counts(2, 5, 2, 2, 2, 20, 6, 6, 4)


def catalogue(tmp_path: Path) -> tuple[dict[str, C.Icon], list[C.Stamp], list[dict[str, str]]]:
    icons = {slug: C.Icon(slug, slug.title(), "CC2233", "CC0-1.0") for slug in C.REFERENCE_BRANDS}
    icons.update(
        {f"other{i}": C.Icon(f"other{i}", f"Other {i}", "22AA44", "CC0-1.0") for i in range(30)}
    )
    stamps = []
    for i in range(12):
        path = tmp_path / f"stamp{i}.png"
        Image.new("RGBA", (40 + i, 30), (i * 20, 100, 50, 255)).save(path)
        folder = "clothes" if i < 8 else "animals"
        stamps.append(C.Stamp(f"{folder}/stamp{i}.png", str(path), f"stamp{i}", i < 8))
    photos = []
    for i, use in enumerate(("reference", "reference", "distractor", "distractor")):
        path = tmp_path / f"photo{i}.png"
        Image.new("RGB", (120, 90), (40 * i, 80, 160)).save(path)
        photos.append({"name": f"photo{i}", "path": str(path), "use": use})
    return icons, stamps, photos


def test_specs_are_deterministic_and_counted(tmp_path: Path) -> None:
    icons, stamps, photos = catalogue(tmp_path)
    specs = C.make_specs(icons, stamps, photos, TINY, seed=1)
    again = C.make_specs(icons, stamps, photos, TINY, seed=1)
    assert [s.composition_key() for s in specs] == [s.composition_key() for s in again]
    other_seed = C.make_specs(icons, stamps, photos, TINY, seed=2)
    assert [s.composition_key() for s in specs] != [s.composition_key() for s in other_seed]
    refs = [s for s in specs if s.role == "reference"]
    assert len(refs) == 5 * 2 + 2 * 2
    assert len({s.image_id for s in specs}) == len(specs)
    hard = [s for s in specs if s.role == "hard_negative"]
    assert len(hard) == 10 * (2 + 1)  # stand-in references only
    distractors = [s for s in specs if s.role == "distractor"]
    assert len(distractors) == 20 + 6 + 6 + 4


def test_hard_negatives_keep_the_layout_and_change_the_logo(tmp_path: Path) -> None:
    icons, stamps, photos = catalogue(tmp_path)
    specs = C.make_specs(icons, stamps, photos, TINY, seed=3)
    refs = {s.image_id: s for s in specs if s.role == "reference"}
    ref_keys = {s.composition_key() for s in refs.values()}
    for neg in (s for s in specs if s.role != "reference"):
        assert neg.composition_key() not in ref_keys
        if neg.role != "hard_negative":
            continue
        ref = refs[neg.imitates or ""]
        assert (neg.width, neg.height, neg.background) == (ref.width, ref.height, ref.background)
        assert (neg.product, neg.product_box, neg.photo_crop) == (
            ref.product,
            ref.product_box,
            ref.photo_crop,
        )
        assert neg.logo != ref.logo
        assert neg.logo is None or neg.logo not in C.REFERENCE_BRANDS


def test_reference_photos_never_feed_distractors(tmp_path: Path) -> None:
    icons, stamps, photos = catalogue(tmp_path)
    specs = C.make_specs(icons, stamps, photos, TINY, seed=4)
    ref_photos = {s.photo for s in specs if s.role == "reference" and s.photo}
    distractor_photos = {s.photo for s in specs if s.role == "distractor" and s.photo}
    assert ref_photos == {"photo0", "photo1"}
    assert distractor_photos <= {"photo2", "photo3"}


def test_render_is_deterministic_and_sized(tmp_path: Path) -> None:
    pytest.importorskip("resvg_py")
    icons, stamps, photos = catalogue(tmp_path)
    icons_dir = tmp_path / "icons"
    icons_dir.mkdir()
    svg = (
        '<svg role="img" viewBox="0 0 24 24" xmlns="http://www.w3.org/2000/svg">'
        '<path d="M2 2h20v10H2z"/></svg>'
    )
    for slug in icons:
        (icons_dir / f"{slug}.svg").write_text(svg)
    specs = C.make_specs(icons, stamps, photos, TINY, seed=5)
    for spec in specs[:: max(1, len(specs) // 12)]:
        a, b = C.render(spec, icons_dir), C.render(spec, icons_dir)
        assert a.size == (spec.width, spec.height)
        assert a.mode == "RGB"
        assert a.tobytes() == b.tobytes()


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "simple-icons-0.0.0.tgz"
    archive.write_bytes(b"not the package")
    assert C.verify_archive(archive, None) == C.sha256_file(archive)
    with pytest.raises(C.CorpusError, match="checksum mismatch"):
        C.verify_archive(archive, "0" * 64)


def test_cache_location_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(C.CACHE_ENV, raising=False)
    assert C.resolve_cache() == C.DEFAULT_CACHE
    monkeypatch.setenv(C.CACHE_ENV, "/tmp/elsewhere")
    assert C.resolve_cache() == Path("/tmp/elsewhere")
    assert C.resolve_cache("x") == Path("x")


@pytest.mark.slow
def test_small_corpus_from_the_registries() -> None:
    """Fetches simple-icons (npm) and tuxpaint-stamps (Debian) into the cache: slow, online."""
    corpus = C.build_corpus(small=True, progress=False)
    summary = json.loads((corpus.root / "manifest.json").read_text())
    assert "SYNTHETIC" in summary["note"]
    for pkg in summary["packages"]:
        if pkg["archive"] in C.KNOWN_SHA256:
            assert pkg["sha256"] == C.KNOWN_SHA256[pkg["archive"]]
    assert len(corpus.references) == summary["counts"]["reference"] > 0
    assert all(i.path.exists() for i in corpus.images)
    again = C.build_corpus(small=True, progress=False)  # reused, not rebuilt
    assert [i.image_id for i in again.images] == [i.image_id for i in corpus.images]
