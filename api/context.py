"""What the app builds once at start and hangs on ``app.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.catalog import CatalogService
from api.ingest.engine import ScoringEngine
from api.ingest.fetch import FetchPolicy
from api.keycache import KeyCache
from api.observability import Metrics
from api.settings import Settings
from detector.images import ImageLimits
from store.blobs import LocalBlobStore

if TYPE_CHECKING:
    from api.deps import Principal
    from api.ingest.coalesce import ScoringQueue


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    #: Read-only units of work (authentication, look-ups before heavy work): never wait for
    #: the SQLite write lock.
    read_sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    catalog: CatalogService
    scoring: ScoringEngine
    fetch_policy: FetchPolicy
    metrics: Metrics
    #: Keys this worker authenticated in the last ``settings.auth_cache_seconds``.
    keys: KeyCache[Principal]
    #: Single-listing scoring requests, coalesced into groups (api.ingest.coalesce); set by
    #: build_context.
    score_queue: ScoringQueue = field(init=False)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.settings.max_image_pixels)
