"""The review queue for reviewers: list, claim, decide, inspect."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.deps import ContextDep, ReviewerKey, SessionDep
from api.errors import AUTH_ERRORS, Conflict, NotFound, ServiceUnavailable, error_responses
from api.pagination import PageDep
from api.review import service, stats
from api.review.schemas import (
    DecisionIn,
    ReviewItemDetail,
    ReviewItemOut,
    ReviewQueue,
    ReviewStats,
    Status,
)

router = APIRouter(prefix="/v1/review", tags=["review"])

Decision = Literal["review", "block"]


def _claim_filters(
    brand_id: Annotated[str | None, Query(max_length=36, description="suspected brand")] = None,
    decision: Annotated[Decision | None, Query(description="verdict decision")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="lowest score")] = None,
) -> service.Filters:
    return service.Filters(brand_id=brand_id, decision=decision, min_score=min_score)


def _queue_filters(
    base: Annotated[service.Filters, Depends(_claim_filters)],
    status: Annotated[
        Status | None, Query(description="default: open items (pending and claimed)")
    ] = None,
) -> service.Filters:
    return service.Filters(status, base.brand_id, base.decision, base.min_score)


QueueFilters = Annotated[service.Filters, Depends(_queue_filters)]
ClaimFilters = Annotated[service.Filters, Depends(_claim_filters)]


@router.get("/queue", response_model=ReviewQueue, responses=error_responses(*AUTH_ERRORS))
def review_queue(
    session: SessionDep, _: ReviewerKey, filters: QueueFilters, page: PageDep
) -> ReviewQueue:
    """Flagged listings to review, highest score first, then oldest first."""
    return service.queue(session, filters, page)


@router.post(
    "/claim-next",
    response_model=ReviewItemOut,
    responses={
        204: {"description": "no pending item matches the filters"},
        **error_responses(*AUTH_ERRORS),
    },
)
def claim_next(
    session: SessionDep, ctx: ContextDep, principal: ReviewerKey, filters: ClaimFilters
) -> ReviewItemOut | Response:
    """Claim the highest-risk pending item (atomically; 204 when the queue is empty)."""
    item = service.claim_next(session, ctx, principal, filters)
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return item


@router.get("/stats", response_model=ReviewStats, responses=error_responses(*AUTH_ERRORS))
def review_statistics(
    session: SessionDep,
    _: ReviewerKey,
    days: Annotated[int, Query(ge=1, le=366, description="window in UTC days, today in")] = 30,
) -> ReviewStats:
    """Flagged volume per day, reviewer-confirmed precision per band and brand, time to decision
    (median, p90) and queue depth."""
    return stats.review_stats(session, days)


@router.get(
    "/{item_id}",
    response_model=ReviewItemDetail,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def review_item(item_id: str, session: SessionDep, _: ReviewerKey) -> ReviewItemDetail:
    """One item with its listing snapshot, verdict, brand context and decision history."""
    return service.item_detail(session, item_id)


@router.post(
    "/{item_id}/claim",
    response_model=ReviewItemOut,
    responses=error_responses(*AUTH_ERRORS, NotFound, Conflict),
)
def claim_item(
    item_id: str, session: SessionDep, ctx: ContextDep, principal: ReviewerKey
) -> ReviewItemOut:
    """Claim an item for the lease time (or extend your own claim); 409 if someone else holds it."""
    return service.claim(session, ctx, principal, item_id)


@router.post(
    "/{item_id}/release",
    response_model=ReviewItemOut,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def release_item(item_id: str, session: SessionDep, principal: ReviewerKey) -> ReviewItemOut:
    """Give up your claim on an item without deciding (others can take it at once); a no-op
    when you hold none."""
    return service.release(session, principal, item_id)


@router.post(
    "/{item_id}/decision",
    response_model=ReviewItemOut,
    responses=error_responses(*AUTH_ERRORS, NotFound, Conflict),
)
def decide_item(
    item_id: str, body: DecisionIn, session: SessionDep, principal: ReviewerKey
) -> ReviewItemOut:
    """Label a claimed item counterfeit, genuine or unsure; a later decision revises it."""
    return service.decide(session, principal, item_id, body)


@router.get(
    "/{item_id}/images/{index}",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "the listing image's stored bytes"},
        **error_responses(*AUTH_ERRORS, NotFound, ServiceUnavailable),
    },
)
def item_image(
    item_id: str,
    index: Annotated[int, Path(ge=0, le=1000)],
    session: SessionDep,
    ctx: ContextDep,
    _: ReviewerKey,
) -> Response:
    """The bytes of one image of the item's listing, as the marketplace sent it."""
    data, content_type = service.listing_image(session, ctx, item_id, index)
    return Response(
        data,
        media_type=content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )
