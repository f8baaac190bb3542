"""Holdout specs, rendering and manifest on a made-up catalogue (offline; nothing is fetched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from training import holdout_corpus as H
from training.image_corpus import render

TINY = H.Counts(4, 2, 2, 2, 2, 12, 6, 6, 4)
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    '<path d="M2 2h20v10H2z"/><circle cx="12" cy="18" r="4"/></svg>'
)


def catalogue(tmp_path: Path) -> H.Sources:
    marks_dir = tmp_path / "marks"
    marks = []
    for family in ("fa", "logos"):
        (marks_dir / family).mkdir(parents=True)
        for i in range(8):
            key = f"{family}/mark{i}"
            (marks_dir / f"{key}.svg").write_text(SVG)
            marks.append(H.Mark(key, family, f"Mark {i}", H._mark_colour(key)))
    items = []
    for i in range(10):
        path = tmp_path / f"item{i}.png"
        Image.new("RGBA", (60 + 5 * i, 50), (20 * i, 90, 160, 255)).save(path)
        family = "twemoji" if i % 2 else "openclipart"
        items.append(H.Item(f"{family}/item{i}", str(path), family, i < 6))
    photos = []
    for i, use in enumerate(("reference", "reference", "distractor", "wallpaper")):
        path = tmp_path / f"photo{i}.jpg"
        Image.new("RGB", (160, 120), (50 * i, 100, 30)).save(path)
        photos.append(
            {
                "name": f"photo{i}",
                "package": "mate-backgrounds",
                "version": "1",
                "path": str(path),
                "licence": "test",
                "use": use,
            }
        )
    packages = tuple(
        {"name": p.name, "registry": p.registry, "version": p.version, "licence": p.licence}
        for p in H.PACKAGES
    )
    return H.Sources(tmp_path, marks_dir, tuple(marks), tuple(items), tuple(photos), packages)


def specs_for(sources: H.Sources, seed: int) -> list[H.Spec]:
    return H.make_specs(sources.marks, sources.items, sources.photos, TINY, seed)


def test_specs_are_deterministic_and_counted(tmp_path: Path) -> None:
    sources = catalogue(tmp_path)
    specs = specs_for(sources, 1)
    assert [s.composition_key() for s in specs] == [
        s.composition_key() for s in specs_for(sources, 1)
    ]
    assert [s.composition_key() for s in specs] != [
        s.composition_key() for s in specs_for(sources, 2)
    ]
    roles = [s.role for s in specs]
    assert roles.count("reference") == 4 * 2 + 2 * 2
    assert roles.count("hard_negative") == 4 * 2 * (2 + 1)
    assert roles.count("distractor") == 12 + 6 + 6 + 4
    assert len({s.image_id for s in specs}) == len(specs)


def test_hard_negatives_keep_the_layout_and_swap_the_mark(tmp_path: Path) -> None:
    sources = catalogue(tmp_path)
    specs = specs_for(sources, 3)
    refs = {s.image_id: s for s in specs if s.role == "reference"}
    ref_marks = {s.logo for s in refs.values()}
    kinds = set()
    for neg in (s for s in specs if s.role == "hard_negative"):
        ref = refs[neg.imitates or ""]
        kinds.add(neg.kind)
        assert (neg.width, neg.height, neg.background, neg.product, neg.product_box) == (
            ref.width,
            ref.height,
            ref.background,
            ref.product,
            ref.product_box,
        )
        if neg.logo is None:
            assert neg.kind == "product_no_mark"
            continue
        assert neg.logo not in ref_marks
        assert neg.logo.split("/")[0] == (ref.logo or "").split("/")[0]  # same family
        assert neg.logo_box == ref.logo_box
        if neg.kind.endswith("_same_colour"):
            assert neg.logo_colour == ref.logo_colour
    assert kinds == {"product_other_mark_same_colour", "product_other_mark", "product_no_mark"}


def test_reference_photos_never_feed_negatives(tmp_path: Path) -> None:
    specs = specs_for(catalogue(tmp_path), 4)
    ref_photos = {s.photo for s in specs if s.role == "reference" and s.photo}
    assert ref_photos == {"photo0", "photo1"}
    assert not ref_photos & {s.photo for s in specs if s.role != "reference"}


def test_the_same_seed_composes_the_same_image(tmp_path: Path) -> None:
    pytest.importorskip("resvg_py")
    sources = catalogue(tmp_path)
    specs, again = specs_for(sources, 5), specs_for(sources, 5)
    for a, b in list(zip(specs, again, strict=True))[:: max(1, len(specs) // 10)]:
        first, second = render(a, sources.marks_dir), render(b, sources.marks_dir)
        assert first.size == (a.width, a.height)
        assert first.tobytes() == second.tobytes()


def test_manifest_says_synthetic_and_names_the_sources(tmp_path: Path) -> None:
    sources = catalogue(tmp_path)
    specs = specs_for(sources, 6)
    rows = H.manifest_rows(specs, {s.image_id: "0" * 64 for s in specs}, sources)
    summary = H.manifest_summary(rows, {"seed": 6}, sources)
    assert summary["synthetic"] is True
    assert summary["note"].startswith("SYNTHETIC HOLDOUT")
    assert summary["counts"]["reference"] == 12
    used = {src.rpartition("@")[0] for row in rows for src in row["sources"].split(";") if src}
    assert used <= {f"{p.registry}:{p.name}" for p in H.PACKAGES}
    assert all(row["licence"] for row in rows if row["sources"])


def test_no_source_of_the_evaluation_corpus_is_used() -> None:
    assert not {p.name for p in H.PACKAGES} & H.EVALUATION_SOURCES
    assert not {p.package for p in H.PHOTOS} & H.EVALUATION_SOURCES
    names = [p.name for p in H.PHOTOS]
    assert len(names) == len(set(names))
    assert {p.use for p in H.PHOTOS} == {"reference", "distractor", "wallpaper"}


def test_built_holdout_in_the_cache_is_labelled_and_checked() -> None:
    """Only reads a holdout someone built (python -m training.holdout_corpus); never fetches."""
    cache = H.resolve_cache()
    built = [
        p
        for p in (cache / "holdout-full", cache / "holdout-small")
        if (p / "manifest.json").exists()
    ]
    if not built:
        pytest.skip("no holdout corpus in the cache")
    summary = json.loads((built[0] / "manifest.json").read_text())
    assert summary["synthetic"] is True and "SYNTHETIC" in summary["note"]
    known = {p.archive: p.sha256 for p in H.PACKAGES}
    for pkg in summary["packages"]:
        assert pkg["sha256"] == known[pkg["archive"]]
        archive = cache / "sources" / pkg["archive"]
        if archive.exists():
            assert H.verify_archive(archive, known[pkg["archive"]]) == pkg["sha256"]
