"""What brands see of the review work: their flagged listings and the evidence for enforcement."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import BrandKey, ContextDep, SessionDep
from api.errors import AUTH_ERRORS, NotFound, error_responses
from api.pagination import PageDep
from api.review import cases, service
from api.review.schemas import CaseReport, FlaggedList, Status

router = APIRouter(tags=["brands"])


@router.get(
    "/v1/brands/{brand_id}/flagged",
    response_model=FlaggedList,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def flagged_listings(
    brand_id: str,
    session: SessionDep,
    principal: BrandKey,
    page: PageDep,
    status: Annotated[Status | None, Query(description="default: every status")] = None,
) -> FlaggedList:
    """Listings flagged for a brand, newest first, with the reviewers' outcome."""
    return service.brand_flagged(session, principal, brand_id, status, page)


@router.get(
    "/v1/cases",
    response_model=CaseReport,
    responses={
        200: {"content": {"text/csv": {}}, "description": "cases (JSON) or one row per listing"},
        **error_responses(*AUTH_ERRORS, NotFound),
    },
)
def enforcement_cases(
    session: SessionDep,
    ctx: ContextDep,
    principal: BrandKey,
    page: PageDep,
    brand_id: Annotated[
        str | None, Query(max_length=36, description="default: the key's brand (admin: all)")
    ] = None,
    fmt: Annotated[
        Literal["json", "csv"], Query(alias="format", description="csv: no paging")
    ] = "json",
) -> CaseReport | Response:
    """Confirmed counterfeits grouped into seller rings, as evidence (JSON pages or CSV)."""
    found = cases.build_cases(session, principal, brand_id, ctx.settings.cases_max_listings)
    if fmt == "csv":
        return Response(
            cases.cases_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="fakeguard-cases.csv"',
                "X-Content-Type-Options": "nosniff",
                "X-Fakeguard-Truncated": "true" if found.truncated else "false",
            },
        )
    return cases.case_report(found, page)
