"""Model registry commands: list, promote, rollback (``fakeguard models ...``).

The registry is one small JSON file, ``<models_dir>/text/registry.json``::

    {"active": "v3", "history": ["v1", "v2"], "events": [{"at": ..., "action": ..., ...}]}

``history`` is a stack of previously active versions: promote pushes the current one, rollback
pops it back. Every write goes to a temporary file that is renamed over the old one, so a reader
(the service polling :func:`detector.artifacts.registry_stamp`) sees either the old or the new
pointer, never half of one; an exclusive lock serialises concurrent writers.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.artifacts import (
    REGISTRY_FILE,
    ArtifactError,
    list_versions,
    load_artifact,
    read_registry,
    text_dir,
    write_json_atomic,
)

__all__ = ["list_versions", "promote", "rollback"]

_MAX_EVENTS = 200


@contextmanager
def _locked(models_dir: str | Path) -> Iterator[None]:
    root = text_dir(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".registry.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write(models_dir: str | Path, registry: dict[str, Any], event: dict[str, Any]) -> None:
    event = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **event}
    events = [*registry.get("events", []), event][-_MAX_EVENTS:]
    data = {"active": registry["active"], "history": registry["history"], "events": events}
    write_json_atomic(text_dir(models_dir) / REGISTRY_FILE, data)


def promote(models_dir: str | Path, version: str, *, note: str | None = None) -> str | None:
    """Make ``version`` active; returns the previously active version.

    The version must load (card present, sha256 matching, trusted types only, same library
    versions): a model the service would refuse is never promoted.
    """
    load_artifact(models_dir, version)
    with _locked(models_dir):
        registry = read_registry(models_dir)
        previous: str | None = registry["active"]
        if previous == version:
            return previous
        if previous is not None:
            registry["history"] = [*registry["history"], previous]
        registry["active"] = version
        event: dict[str, Any] = {"action": "promote", "version": version, "previous": previous}
        if note:
            event["note"] = note
        _write(models_dir, registry, event)
    return previous


def rollback(models_dir: str | Path) -> str:
    """Re-activate the version that was active before the current one; returns it.

    Versions in the history that no longer load are skipped (and dropped from it).
    """
    with _locked(models_dir):
        registry = read_registry(models_dir)
        history: list[str] = list(registry["history"])
        current = registry["active"]
        skipped: list[str] = []
        while history:
            candidate = history.pop()
            if candidate == current:
                continue
            try:
                load_artifact(models_dir, candidate)
            except ArtifactError:
                skipped.append(candidate)
                continue
            registry["history"], registry["active"] = history, candidate
            _write(
                models_dir,
                registry,
                {
                    "action": "rollback",
                    "version": candidate,
                    "previous": current,
                    "skipped": skipped,
                },
            )
            return candidate
    raise ArtifactError(
        "nothing to roll back to" + (f" (unusable: {', '.join(skipped)})" if skipped else "")
    )
