"""Request ids, JSON logs and Prometheus metrics.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token, else a fresh
one. It is echoed in the response header, put in every log line written while the request is
handled and in every error body. Metrics use prometheus_client; under ``fakeguard serve
--workers N`` (which sets ``PROMETHEUS_MULTIPROC_DIR``) counters and histograms are summed over
the workers, and gauges (queue depth, catalog, model) are read at scrape time.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Unauthorized, error_body, error_responses
from api.request_id import current_request_id, request_id_var
from store.db import session_scope
from store.review_stats import ReviewStatsRepository

if TYPE_CHECKING:
    from api.context import AppContext
    from api.ingest.schemas import Verdict

T = TypeVar("T")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("fakeguard.access")
log = logging.getLogger("fakeguard.api")


# -- logs ----------------------------------------------------------------------------------------

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Give the ``fakeguard`` loggers one stderr handler (JSON or text); idempotent."""
    logger = logging.getLogger("fakeguard")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        if getattr(handler, "_fakeguard", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._fakeguard = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)


# -- metrics -------------------------------------------------------------------------------------

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters and histograms one app records (its own registry: apps do not share)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fakeguard_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fakeguard_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.listings = Counter(
            "fakeguard_listings_scored",
            "Listings scored, by decision and suspected brand (cached: a retry answered from "
            "the stored verdict)",
            ["decision", "brand_id", "cached"],
            registry=self.registry,
        )
        self.image_failures = Counter(
            "fakeguard_image_failures",
            "Images that could not be used, by reason code and source (upload or listing)",
            ["source", "reason"],
            registry=self.registry,
        )

        self.scoring_groups = Histogram(
            "fakeguard_scoring_group_listings",
            "Single-listing requests scored together in one unit of work (1: alone)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )

    def scoring_group(self, listings: int) -> None:
        self.scoring_groups.observe(listings)

    def verdicts(self, verdicts: Iterable[Verdict]) -> None:
        """Count verdicts by decision and brand, and their unusable images by reason."""
        for v in verdicts:
            self.listings.labels(v.decision, v.brand_id or "none", str(v.cached).lower()).inc()
            if v.cached:
                continue
            for reason in v.reasons:
                if reason.signal == "image_unreadable":
                    self.image_failed("listing", str(reason.evidence.get("code", "unknown")))

    def image_failed(self, source: str, reason: str) -> None:
        self.image_failures.labels(source, reason).inc()


class _LiveGauges(Collector):
    """Values read at scrape time from the worker answering the scrape."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        index = ctx.catalog.index
        yield GaugeMetricFamily(
            "fakeguard_catalog_version", "Catalog event version applied", value=index.version
        )
        yield GaugeMetricFamily(
            "fakeguard_catalog_references", "References in the search index", value=len(index)
        )
        yield GaugeMetricFamily(
            "fakeguard_catalog_hashes", "Hashes in the search index", value=index.n_hashes
        )
        yield GaugeMetricFamily(
            "fakeguard_catalog_references_old_hashes",
            "References searched with hashes of an older compatible algorithm version "
            "(fakeguard catalog rehash updates them)",
            value=len(ctx.catalog.stale),
        )
        yield GaugeMetricFamily(
            "fakeguard_catalog_references_without_hashes",
            "References not searchable: no hashes of a usable algorithm version",
            value=ctx.catalog.missing_hashes,
        )
        yield GaugeMetricFamily(
            "fakeguard_catalog_event_gaps",
            "Catalog event ids below the applied version not seen yet (a transaction that has "
            "not committed, or a rolled-back one, given up after a while)",
            value=len(ctx.catalog.gaps),
        )
        model = ctx.scoring.model_status()
        info = GaugeMetricFamily(
            "fakeguard_model_info", "The text model being served (value 1)", labels=["version"]
        )
        info.add_metric([str(model["version"] or "none")], 1)
        yield info
        queue = GaugeMetricFamily(
            "fakeguard_review_queue_depth", "Open review items by state", labels=["state"]
        )
        try:
            with session_scope(ctx.read_sessions) as session:
                depth = ReviewStatsRepository(session).depth()
            queue.add_metric(["pending"], depth.pending)
            queue.add_metric(["claimed"], depth.claimed)
        except Exception:  # the database is down: say nothing rather than a wrong number
            log.warning("metrics: review queue depth unavailable", exc_info=True)
        yield queue


def render_metrics(ctx: AppContext) -> bytes:
    registry: CollectorRegistry
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(ctx.metrics.registry))
    registry.register(_LiveGauges(ctx))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"},
        **error_responses(Unauthorized),
    },
)
def metrics(request: Request) -> Response:
    """Prometheus metrics (needs ``Authorization: Bearer <FAKEGUARD_METRICS_KEY>`` when set)."""
    ctx: AppContext = request.app.state.ctx
    key = ctx.settings.metrics_key
    if key is not None:
        import hmac

        expected = f"Bearer {key.get_secret_value()}"
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(
                "this endpoint needs 'Authorization: Bearer <metrics key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(render_metrics(ctx), media_type=CONTENT_TYPE_LATEST)


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (the request id)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


# -- the middleware ------------------------------------------------------------------------------


class RequestContext:
    """Outermost middleware: request id, access log line, request metrics, and the 500 body.

    An exception escaping the app is answered here (JSON with the request id) rather than by
    Starlette's outer error middleware, which would run after the request id is gone.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1").strip()
                break
        rid = given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = json.dumps(error_body("internal_error", "an unexpected error occurred")).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            # Unknown paths share one label, so probing cannot grow the series without bound;
            # plain Starlette routes (/docs, /openapi.json) have fixed paths.
            template = getattr(route, "path", None) or (
                scope.get("path", "") if status != 404 else "unmatched"
            )
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                scope.get("path", ""),
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
