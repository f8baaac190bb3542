"""The application factory. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api import health
from api.admin.router import router as admin_router
from api.brands.router import router as brands_router
from api.catalog import CatalogService
from api.context import AppContext
from api.errors import error_body, install_error_handlers
from api.ingest.coalesce import ScoringQueue
from api.ingest.engine import ScoringEngine
from api.ingest.fetch import FetchPolicy
from api.ingest.router import router as ingest_router
from api.keycache import KeyCache
from api.observability import Metrics, RequestContext, configure_logging
from api.observability import router as observability_router
from api.review.brand_router import router as review_brand_router
from api.review.router import router as review_router
from api.settings import Settings
from api.validation import no_nul_in_url
from api.web.router import install as install_review_pages
from detector.images import ImageLimits
from detector.scorer import Thresholds
from detector.signals import ExchangeRates
from store.blobs import LocalBlobStore
from store.db import PgTimeouts, make_engine, make_session_factory, session_scope
from store.keys import ApiKeyRepository
from store.migrate import upgrade

log = logging.getLogger("fakeguard")


class BodySizeLimit:
    """Refuse request bodies over a cap with 413 before they are read (Content-Length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", []):
                if name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        length = -1
                    if length > self.max_bytes:
                        response = JSONResponse(
                            error_body(
                                "payload_too_large",
                                f"request body of {length:,} bytes exceeds the "
                                f"{self.max_bytes:,}-byte limit",
                            ),
                            status_code=413,
                        )
                        await response(scope, receive, send)
                        return
        await self.app(scope, receive, send)


def build_context(settings: Settings, metrics: Metrics | None = None) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.migrate_on_start:
        upgrade(settings.db_url)
    timeouts = PgTimeouts(
        connect_seconds=settings.db_connect_timeout_seconds,
        keepalive_seconds=settings.db_keepalive_seconds,
        statement_seconds=settings.db_statement_timeout_seconds,
    )
    engine = make_engine(settings.db_url, pool_size=settings.db_pool_size, pg_timeouts=timeouts)
    sessions = make_session_factory(engine)
    read_sessions = make_session_factory(engine, writes=False)
    blobs = LocalBlobStore(settings.blobs_path)
    if settings.bootstrap_admin_key is not None:
        with session_scope(sessions) as session:
            ApiKeyRepository(session).ensure(
                settings.bootstrap_admin_key.get_secret_value(), "admin", name="bootstrap admin"
            )
    catalog = CatalogService(
        read_sessions,
        default_distance=settings.match_distance,
        refresh_seconds=settings.catalog_refresh_seconds,
        reconcile_seconds=settings.catalog_reconcile_seconds,
    )
    try:
        catalog.load()
    except Exception:  # an unmigrated or unreachable database: /readyz says so; retry later
        log.exception("could not load the reference catalog at start; the refresher will retry")
    limits = ImageLimits(max_pixels=settings.max_image_pixels)
    rates = (
        ExchangeRates(settings.fx_rates, settings.fx_rates_as_of)
        if settings.fx_rates
        else ExchangeRates.default()
    )
    scoring = ScoringEngine(
        sessions=read_sessions,
        catalog=catalog,
        blobs=blobs,
        models_dir=settings.models_dir,
        image_limits=limits,
        thresholds=Thresholds(settings.review_threshold, settings.block_threshold),
        rates=rates,
        image_threads=settings.image_threads,
        reference_view_cache=settings.reference_view_cache,
        max_candidates=settings.max_candidates,
        model_poll_seconds=settings.model_poll_seconds,
    )
    fetch_policy = FetchPolicy(
        enabled=settings.image_fetch_enabled,
        allowed_hosts=tuple(settings.image_fetch_allowed_hosts),
        allow_http=settings.image_fetch_allow_http,
        max_bytes=settings.max_image_bytes,
        timeout_seconds=settings.image_fetch_timeout_seconds,
    )
    ctx = AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        blobs=blobs,
        catalog=catalog,
        scoring=scoring,
        fetch_policy=fetch_policy,
        metrics=metrics or Metrics(),
        keys=KeyCache(settings.auth_cache_seconds),
    )
    ctx.score_queue = ScoringQueue(
        ctx,
        enabled=settings.score_coalescing,
        window_seconds=settings.score_coalescing_window_ms / 1000,
        max_group=settings.max_batch_listings,
        on_group=ctx.metrics.scoring_group,
    )
    return ctx


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the fakeguard app. Settings default to the environment (``FAKEGUARD_*``)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings, metrics)
        app.state.ctx = ctx
        ctx.catalog.start()
        try:
            yield
        finally:
            ctx.catalog.stop()
            ctx.scoring.close()
            ctx.engine.dispose()

    app = FastAPI(
        title="fakeguard",
        version="0.1.0",
        summary="Counterfeit-listing detection: score, explain, review.",
        lifespan=lifespan,
        dependencies=[Depends(no_nul_in_url)],
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: ids every response
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(observability_router)
    app.include_router(admin_router)
    app.include_router(brands_router)
    app.include_router(ingest_router)
    app.include_router(review_router)
    app.include_router(review_brand_router)
    install_review_pages(app)

    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory api.app:app_from_env`` (used by ``fakeguard serve``)."""
    return create_app(Settings())
