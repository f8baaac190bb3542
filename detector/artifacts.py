"""Text-model artifacts on disk: save, verify, load, and read which version is active.

Layout under a models directory (``FAKEGUARD_MODELS_DIR``, default ``models``)::

    models/text/registry.json             {"active": "<version>", "history": [...], "events": [...]}
    models/text/<version>/model.skops     the fitted Pipeline (skops.io, no pickle)
    models/text/<version>/card.json       model card: metrics, thresholds, data fingerprint,
                                          library versions, created time, sha256 of model.skops
    models/text/<version>/plots/*.png     precision-recall, calibration, confusion matrix

Loading is deliberately strict. skops.io reconstructs objects from a JSON schema and refuses any
type not on an explicit list (:data:`TRUSTED_TYPES` on top of skops' own safe defaults), so a
tampered file cannot run code; the file's sha256 must match the card (corrupt or swapped files
are refused); and the scikit-learn, skops and numpy versions recorded in the card must equal the
running ones (a linear model's attributes can change meaning between releases), and so must the
classifier schema (:data:`detector.classifier.MODEL_SCHEMA`, bumped when our own estimators'
attributes change). Every refusal is an :class:`ArtifactError` with a message that says what to
do.

The registry pointer is only *read* here (``training.registry`` writes it, atomically). A
service polls :func:`registry_stamp` every few seconds, or uses :class:`ActiveModel`, to pick up
a promotion or rollback without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sklearn.pipeline import Pipeline

from detector.classifier import MODEL_SCHEMA, TextModel

__all__ = [
    "CARD_FILE",
    "CHECKED_LIBRARIES",
    "MODEL_FILE",
    "REGISTRY_FILE",
    "TRUSTED_TYPES",
    "ActiveModel",
    "ArtifactError",
    "active_version",
    "check_compatible",
    "library_versions",
    "list_versions",
    "load_active",
    "load_artifact",
    "read_card",
    "read_registry",
    "registry_stamp",
    "save_artifact",
    "text_dir",
    "write_json_atomic",
]

MODEL_FILE: Final = "model.skops"
CARD_FILE: Final = "card.json"
REGISTRY_FILE: Final = "registry.json"
KIND: Final = "text"
FORMAT: Final = "fakeguard-text-model/1"

# Types beyond skops' defaults that a text-model artifact may contain. Nothing else loads.
TRUSTED_TYPES: Final[tuple[str, ...]] = (
    "detector.classifier.LexiconScaler",
    "detector.classifier.ListingFeatures",
    "detector.classifier.NgramTfidf",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)
# An artifact loads only under exactly these library versions.
CHECKED_LIBRARIES: Final[tuple[str, ...]] = ("scikit-learn", "skops", "numpy")


class ArtifactError(Exception):
    """An artifact or the registry cannot be used: missing, corrupt, untrusted or incompatible."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artifact depends on (and Python, for the record)."""
    import numpy
    import scipy
    import sklearn
    import skops

    return {
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def text_dir(models_dir: str | Path) -> Path:
    """``<models_dir>/text``: where text-model versions and the registry live."""
    return Path(models_dir) / KIND


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# One artifact


def save_artifact(
    models_dir: str | Path, version: str, pipeline: Pipeline, card: Mapping[str, Any]
) -> Path:
    """Write ``model.skops`` and ``card.json`` for ``version``; returns the version directory.

    The card is completed with the format, version, library versions and the model file's
    sha256. An existing version directory is refused (versions are immutable).
    """
    import skops.io as sio

    if not version or "/" in version or version.startswith("."):
        raise ArtifactError(f"invalid version name {version!r}")
    out = text_dir(models_dir) / version
    if (out / CARD_FILE).exists():
        raise ArtifactError(f"version {version} already exists in {out.parent}")
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = out / f".{MODEL_FILE}.tmp"
    sio.dump(pipeline, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    os.replace(tmp, model_path)
    full = dict(card)
    full.update(
        {
            "format": FORMAT,
            "version": version,
            "model_schema": MODEL_SCHEMA,
            "libraries": library_versions(),
            "artifact": {
                "file": MODEL_FILE,
                "serializer": "skops.io",
                "sha256": _sha256(model_path),
                "bytes": model_path.stat().st_size,
                "trusted_types": list(TRUSTED_TYPES),
            },
        }
    )
    full.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json_atomic(out / CARD_FILE, full)
    return out


def read_card(version_dir: str | Path) -> dict[str, Any]:
    """The model card of a version directory (ArtifactError when missing or not JSON)."""
    path = Path(version_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"no model card at {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model card {path} is unreadable: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT} model card")
    return card


def check_compatible(card: Mapping[str, Any]) -> None:
    """Raise ArtifactError unless the card's library versions and model schema are ours."""
    if card.get("model_schema") != MODEL_SCHEMA:
        raise ArtifactError(
            f"model {card.get('version')} uses classifier schema {card.get('model_schema')} "
            f"(this code reads schema {MODEL_SCHEMA}); retrain it with `fakeguard train`"
        )
    recorded = card.get("libraries")
    if not isinstance(recorded, Mapping):
        raise ArtifactError("model card records no library versions")
    running = library_versions()
    diffs = [
        f"{lib} {recorded.get(lib)!s} (running {running[lib]})"
        for lib in CHECKED_LIBRARIES
        if recorded.get(lib) != running[lib]
    ]
    if diffs:
        raise ArtifactError(
            f"model {card.get('version')} was built with "
            + ", ".join(diffs)
            + "; retrain it with `fakeguard train` under the running versions"
        )


def load_artifact(models_dir: str | Path, version: str) -> TextModel:
    """Verify and load one version (see the module docstring for what is checked)."""
    import skops.io as sio

    vdir = text_dir(models_dir) / version
    card = read_card(vdir)
    if card.get("version") != version:
        raise ArtifactError(f"{vdir}: card names version {card.get('version')!r}")
    check_compatible(card)
    model_path = vdir / MODEL_FILE
    artifact = card.get("artifact") or {}
    if not model_path.is_file():
        raise ArtifactError(f"model file missing: {model_path}")
    if _sha256(model_path) != artifact.get("sha256"):
        raise ArtifactError(f"{model_path} does not match the sha256 in its card (corrupt?)")
    try:
        untrusted = sio.get_untrusted_types(file=model_path)
        extra = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if extra:
            raise ArtifactError(f"{model_path} contains untrusted types: {', '.join(extra)}")
        obj = sio.load(model_path, trusted=list(TRUSTED_TYPES))
    except ArtifactError:
        raise
    except Exception as exc:  # skops raises many types for a damaged zip/schema
        raise ArtifactError(f"cannot load {model_path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, Pipeline):
        raise ArtifactError(f"{model_path} holds a {type(obj).__name__}, not a Pipeline")
    return TextModel(obj, version=version, card=card)


def list_versions(models_dir: str | Path) -> list[dict[str, Any]]:
    """Every version directory with a summary of its card, oldest first.

    Each entry: ``version``, ``created_at``, ``active``, ``compatible`` (loadable under the
    running library versions), ``pr_auc`` (held-out) and ``error`` (why it is unusable).
    """
    root = text_dir(models_dir)
    active = active_version(models_dir)
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for vdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        entry: dict[str, Any] = {"version": vdir.name, "active": vdir.name == active}
        try:
            card = read_card(vdir)
            entry["created_at"] = card.get("created_at")
            entry["pr_auc"] = (card.get("metrics") or {}).get("holdout", {}).get("pr_auc")
            check_compatible(card)
            entry["compatible"], entry["error"] = True, None
        except ArtifactError as exc:
            entry.setdefault("created_at", None)
            entry["compatible"], entry["error"] = False, str(exc)
        out.append(entry)
    out.sort(key=lambda e: (e.get("created_at") or "", e["version"]))
    return out


# --------------------------------------------------------------------------------------------
# Registry (read side)


def read_registry(models_dir: str | Path) -> dict[str, Any]:
    """``{"active": str | None, "history": [...], "events": [...]}``; empty when absent."""
    path = text_dir(models_dir) / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"active": None, "history": [], "events": []}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"registry {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"registry {path} is not a JSON object")
    active = data.get("active")
    history = data.get("history", [])
    if active is not None and not isinstance(active, str):
        raise ArtifactError(f"registry {path}: 'active' must be a string")
    if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
        raise ArtifactError(f"registry {path}: 'history' must be a list of versions")
    return {"active": active, "history": history, "events": data.get("events", [])}


def active_version(models_dir: str | Path) -> str | None:
    """The promoted version, or None when nothing has been promoted."""
    active: str | None = read_registry(models_dir)["active"]
    return active


def load_active(models_dir: str | Path) -> TextModel:
    """Load the promoted version (ArtifactError when there is none or it cannot be used)."""
    version = active_version(models_dir)
    if version is None:
        raise ArtifactError(f"no active text model in {text_dir(models_dir)}")
    return load_artifact(models_dir, version)


def registry_stamp(models_dir: str | Path) -> tuple[int, int, str] | None:
    """A cheap token that changes whenever the registry pointer is rewritten.

    ``(mtime_ns, size, active version)`` of ``registry.json``, None when it does not exist.
    One ``stat`` and one read of a small file: fine to call every few seconds.
    """
    path = text_dir(models_dir) / REGISTRY_FILE
    try:
        st = path.stat()
        active = read_registry(models_dir)["active"]
    except (FileNotFoundError, ArtifactError):
        return None
    return (st.st_mtime_ns, st.st_size, str(active))


@dataclass
class ActiveModel:
    """The active model, reloaded when the registry changes (no restart, no thread).

    Call :meth:`get` per request (or per batch): at most every ``poll_seconds`` it compares
    :func:`registry_stamp` with the last one and loads the newly promoted version. If the new
    version cannot be loaded the previous model keeps serving and the error is kept in
    ``last_error`` (and passed to ``on_error``). A process that has no previous model (one
    started, or restarted after a crash, while the active version is unusable) serves the
    newest version of the registry's history that loads, as a worker that had been running
    would, rather than none.
    """

    models_dir: Path
    poll_seconds: float = 5.0
    on_error: Callable[[ArtifactError], None] | None = None
    model: TextModel | None = None
    last_error: ArtifactError | None = None
    _stamp: tuple[int, int, str] | None = None
    _checked_at: float = float("-inf")

    def get(self) -> TextModel:
        """The current model; raises ArtifactError only if none has ever loaded."""
        now = time.monotonic()
        if self.model is None or now - self._checked_at >= self.poll_seconds:
            self._checked_at = now
            self.refresh()
        if self.model is None:
            raise self.last_error or ArtifactError("no active text model")
        return self.model

    def refresh(self) -> bool:
        """Reload if the registry changed; True when a new model was loaded."""
        stamp = registry_stamp(self.models_dir)
        if stamp == self._stamp and self.model is not None:
            return False
        try:
            model = load_active(self.models_dir)
        except ArtifactError as exc:
            self.last_error = exc
            self._stamp = stamp
            fallback = self._previous() if self.model is None else None
            if fallback is not None:
                self.model = fallback
            if self.on_error is not None:
                self.on_error(exc)
            return fallback is not None
        self.model, self._stamp, self.last_error = model, stamp, None
        return True

    def _previous(self) -> TextModel | None:
        """The newest previously active version that loads, or None."""
        try:
            history = read_registry(self.models_dir)["history"]
        except ArtifactError:
            return None
        for version in reversed(history):
            try:
                return load_artifact(self.models_dir, version)
            except ArtifactError:
                continue
        return None
