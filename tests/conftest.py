"""Shared fixtures: every store/API test runs on SQLite and, when FAKEGUARD_TEST_POSTGRES_URL is
set, on real PostgreSQL too. Each test gets a fresh database cloned from a template that the
Alembic migrations built once per session."""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

warnings.filterwarnings("ignore", message=".*httpx2.*")

PG_ENV = "FAKEGUARD_TEST_POSTGRES_URL"
_counter = itertools.count()


def _pg_url(base: str, database: str) -> str:
    url = make_url(base).set(database=database)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


class _Template:
    """A migrated template database and a way to clone it per test."""

    def __init__(self, kind: str, tmp: Path) -> None:
        from store.migrate import upgrade

        self.kind = kind
        self.tag = uuid.uuid4().hex[:8]
        if kind == "sqlite":
            self.path = tmp / "template.db"
            upgrade(f"sqlite:///{self.path}")
        else:
            base = os.environ[PG_ENV]
            self.admin = create_engine(
                _pg_url(base, make_url(base).database or "postgres"), isolation_level="AUTOCOMMIT"
            )
            self.base = base
            self.template = f"fg_tpl_{self.tag}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.template}"'))
            upgrade(_pg_url(base, self.template))
            self.created: list[str] = []

    def clone(self, tmp: Path) -> str:
        if self.kind == "sqlite":
            target = tmp / f"db{next(_counter)}.sqlite"
            shutil.copyfile(self.path, target)
            return f"sqlite:///{target}"
        name = f"fg_t_{self.tag}_{next(_counter)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return _pg_url(self.base, name)

    def drop(self, url: str) -> None:
        if self.kind != "postgresql":
            return
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self.kind == "postgresql":
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
            self.admin.dispose()


def _backends() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    params.append(
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set"),
        )
    )
    return params


_templates: dict[str, _Template] = {}


@pytest.fixture(scope="session")
def _template_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("templates")
    yield path
    for tpl in _templates.values():
        tpl.close()


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, _template_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh, fully migrated database URL (SQLite file or PostgreSQL database)."""
    kind: str = request.param
    if kind not in _templates:
        _templates[kind] = _Template(kind, _template_dir)
    tpl = _templates[kind]
    url = tpl.clone(tmp_path)
    yield url
    tpl.drop(url)
