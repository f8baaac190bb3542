"""detector/ is the pure core: importing all of it must not pull in the web or database stack."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import detector

FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "alembic", "api", "store", "training")


def test_detector_imports_no_web_or_database_stack() -> None:
    modules = [f"detector.{m.name}" for m in pkgutil.iter_modules(detector.__path__)]
    assert "detector.images" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.strip() == "", f"detector imported: {out.stdout.strip()}"
