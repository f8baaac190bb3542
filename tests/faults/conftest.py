"""Fixtures for the fault tests: a fresh PostgreSQL database (these faults are about a real
server), the session's small text model, row counts of everything scoring writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from tests.api.conftest import (
    make_settings,
    models_dir,  # noqa: F401  (the session's text model)
)
from tests.conftest import PG_ENV, _Template, _templates

#: Everything one scored listing may write.
SCORING_TABLES = ("listings", "listing_versions", "verdicts", "review_items")


@pytest.fixture
def pg_url(_template_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated PostgreSQL database (psycopg URL); skipped without the test server."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} not set")
    if "postgresql" not in _templates:
        _templates["postgresql"] = _Template("postgresql", _template_dir)
    tpl = _templates["postgresql"]
    url = tpl.clone(tmp_path)
    yield url
    tpl.drop(url)


def count_rows(url: str, tables: tuple[str, ...] = SCORING_TABLES) -> dict[str, int]:
    """Committed rows per table, read over a connection of its own."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables
            }
    finally:
        engine.dispose()


@pytest.fixture
def client(db_url: str, tmp_path: Path, models_dir: Path) -> Iterator[TestClient]:  # noqa: F811
    """The app on ``db_url`` with its blob store in ``tmp_path / "blobs"`` (5xx as responses)."""
    settings = make_settings(db_url, tmp_path, models_dir=models_dir, blob_dir=tmp_path / "blobs")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
