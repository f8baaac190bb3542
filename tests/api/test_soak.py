"""The soak (bench/soak.py) in a short form: a real two-worker server on loopback at a steady
rate with images; no errors, and worker memory not running away. The release soak is
``python -m bench.soak --seconds 300`` (see the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_scoring, soak


def test_short_soak_has_no_errors_and_memory_levels_off(
    models_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_scoring, "POOL_IMAGES", 40)  # fewer listing images to paint
    argv = ["--seconds", "10", "--rate", "6", "--references", "40", "--sample-seconds", "1"]
    # a 10 s run is mostly warm-up: allow more growth than the release run does
    argv += ["--growth-mb", "64", "--models-from", str(models_dir)]
    code = soak.main(argv)
    out = capsys.readouterr().out
    assert "errors: 0" in out, out
    assert "RSS MB" in out and "GROWS" not in out, out
    assert code == 0, out
