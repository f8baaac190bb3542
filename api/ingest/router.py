"""Scoring endpoints for the marketplace's ingestion pipeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import (
    ContextDep,
    IngestKey,
    Principal,
    SessionDep,
    UnitOfWorkDep,
    require_role,
)
from api.errors import (
    AUTH_ERRORS,
    InsufficientStorage,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    error_responses,
)
from api.ingest import service
from api.ingest.schemas import BatchIn, BatchOut, ListingHistory, ListingIn, Verdict
from api.responses import json_response

router = APIRouter(prefix="/v1/listings", tags=["scoring"])

ListingReader = Annotated[Principal, Depends(require_role("ingest", "reviewer"))]


@router.post(
    "/score",
    response_model=Verdict,
    responses=error_responses(*AUTH_ERRORS, Unprocessable, ServiceUnavailable, InsufficientStorage),
)
async def score(body: ListingIn, ctx: ContextDep, _: IngestKey) -> Response:
    """Score one listing: score, decision and reasons. Idempotent on the listing's content."""
    verdict = await ctx.score_queue.score(body)
    ctx.metrics.verdicts([verdict])
    return json_response(verdict)


@router.post(
    "/score-batch",
    response_model=BatchOut,
    responses=error_responses(*AUTH_ERRORS, Unprocessable, ServiceUnavailable, InsufficientStorage),
)
async def score_batch(
    body: BatchIn, unit: UnitOfWorkDep, ctx: ContextDep, _: IngestKey
) -> Response:
    """Score up to ``max_batch_listings`` listings; results in the same order. An item that
    cannot be scored, an invalid one included, gets its own error entry; the others are
    scored."""
    limit = ctx.settings.max_batch_listings
    if len(body.listings) > limit:
        raise Unprocessable(
            f"{len(body.listings)} listings in one batch; the limit is {limit}",
            code="batch_too_large",
        )
    results = await unit.run(service.score_batch, ctx, body.listings)
    ctx.metrics.verdicts([r for r in results if isinstance(r, Verdict)])
    return json_response(BatchOut(results=results))


@router.get(
    "/{listing_id}",
    response_model=ListingHistory,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def listing_history(listing_id: str, session: SessionDep, _: ListingReader) -> ListingHistory:
    """Every scored version of a listing with its verdict, oldest first."""
    found = service.history(session, listing_id)
    if found is None:
        raise NotFound(f"listing {listing_id} has not been scored")
    return found
