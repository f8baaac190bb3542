"""The per-worker scoring machinery: image matcher, reference views, text model, scorer.

Built once in create_app. The scorer is rebuilt when the brands change (checked at most every
``brand_refresh_seconds``) or when a newly promoted text model is picked up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.catalog import CatalogService
from api.observability import ContextThreadPool
from detector.artifacts import ActiveModel, ArtifactError
from detector.images import ImageLimits
from detector.matching import ImageMatcher
from detector.scorer import BrandProfile, Scorer, Thresholds
from detector.signals import ExchangeRates, authorised_sellers
from detector.verify import VerifyView, prepare_reference
from store.blobs import BlobStoreError, LocalBlobStore
from store.brands import BrandRepository
from store.db import session_scope

log = logging.getLogger("fakeguard.scoring")


class ReferenceViewCache:
    """Prepared verification views of reference images, least recently used evicted."""

    def __init__(self, catalog: CatalogService, blobs: LocalBlobStore, capacity: int) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.capacity = capacity
        self._views: OrderedDict[str, VerifyView] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, reference_id: str) -> VerifyView | None:
        meta = self.catalog.meta.get(reference_id)
        if meta is None:
            return None
        with self._lock:
            view = self._views.get(meta.sha256)
            if view is not None:
                self._views.move_to_end(meta.sha256)
                return view
        try:
            data = self.blobs.get(meta.sha256)
        except BlobStoreError:
            log.warning("reference %s: blob unreadable", reference_id, exc_info=True)
            return None
        if data is None:
            return None
        try:
            view = prepare_reference(data)
        except Exception:
            log.warning("reference %s: cannot prepare for verification", reference_id)
            return None
        with self._lock:
            self._views[meta.sha256] = view
            while len(self._views) > self.capacity:
                self._views.popitem(last=False)
        return view


def brand_profiles(session: Session) -> list[BrandProfile]:
    out = []
    for b in BrandRepository(session).all():
        price = None
        if b.reference_price_amount is not None and b.reference_price_currency:
            price = (float(b.reference_price_amount), b.reference_price_currency)
        out.append(
            BrandProfile(
                id=b.id,
                name=b.name,
                aliases=tuple(b.aliases or ()),
                authorized_sellers=authorised_sellers(b.authorized_sellers),
                reference_price=price,
                review_threshold=b.review_threshold,
                block_threshold=b.block_threshold,
            )
        )
    return out


class ScoringEngine:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: CatalogService,
        blobs: LocalBlobStore,
        models_dir: Path,
        image_limits: ImageLimits,
        thresholds: Thresholds,
        rates: ExchangeRates,
        image_threads: int | None = None,
        reference_view_cache: int = 500,
        max_candidates: int = 5,
        brand_refresh_seconds: float = 5.0,
        model_poll_seconds: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.thresholds = thresholds
        self.rates = rates
        self.brand_refresh_seconds = brand_refresh_seconds
        self.reference_views = ReferenceViewCache(catalog, blobs, reference_view_cache)
        self.matcher = ImageMatcher(
            catalog.index, self.reference_views, limits=image_limits, max_candidates=max_candidates
        )
        self.pool = ContextThreadPool(  # log lines from image work keep the request id
            max_workers=image_threads or os.cpu_count() or 2, thread_name_prefix="fg-image"
        )
        self.model = ActiveModel(
            models_dir, poll_seconds=model_poll_seconds, on_error=self._model_refused
        )
        self._scorer: Scorer | None = None
        self._scorer_key: tuple[Any, ...] | None = None
        self._brands_checked = float("-inf")
        self._brand_stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _model_refused(self, exc: ArtifactError) -> None:
        # Once per registry change (and every poll while no model has loaded yet).
        current = self.model.model if hasattr(self, "model") else None
        log.error(
            "text model refused, %s: %s",
            f"still serving {current.version}" if current else "no text model to serve",
            exc,
        )

    def model_status(self) -> dict[str, Any]:
        current = self.model.model
        return {
            "version": current.version if current else None,
            "error": str(self.model.last_error) if self.model.last_error else None,
        }

    def scorer(self) -> Scorer:
        """The current scorer; raises ArtifactError when no text model can be loaded."""
        model = self.model.get()
        now = time.monotonic()
        with self._lock:
            if self._scorer is None or now - self._brands_checked >= self.brand_refresh_seconds:
                with session_scope(self.sessions) as session:
                    self._brand_stamp = BrandRepository(session).stamp()
                self._brands_checked = now
            key = (self._brand_stamp, model.version)
            if self._scorer is None or key != self._scorer_key:
                with session_scope(self.sessions) as session:
                    profiles = brand_profiles(session)
                self._scorer = Scorer(
                    profiles,
                    model.predict_proba,
                    text_explainer=model.explain,
                    text_analyser=model.analyse,
                    model_version=model.version,
                    rates=self.rates,
                    thresholds=self.thresholds,
                )
                self._scorer_key = key
            return self._scorer
