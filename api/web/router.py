"""The reviewer pages at /review: sign-in, the queue, the listing page, statistics.

Server-rendered (Jinja2) over the same services as the JSON review API; a little JavaScript
adds keyboard shortcuts and claims an item when its page opens. Pages are not in the OpenAPI
schema (they are not an API).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from api.brands import service as brands_service
from api.deps import ContextDep, SessionDep
from api.errors import FakeguardError
from api.pagination import Page
from api.review import service, stats
from api.review.schemas import DecisionIn
from api.web import service as pages
from api.web import views
from api.web.auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SIGNIN_NONCE_SECONDS,
    CsrfRejected,
    MaybeReviewer,
    PageReviewer,
    PostingReviewer,
    Reviewer,
    SignInFailed,
    SignInRequired,
    check_signin_nonce,
    clear_cookie,
    new_signin_nonce,
    set_cookie,
    sign_in,
    sign_out,
)

HERE = Path(__file__).parent
PAGE_SIZE = 50

router = APIRouter(prefix="/review", include_in_schema=False)

#: Pages render only our own assets; images of listings are served by page-scoped routes.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=3600",
}


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.globals.update(when=views.when, duration=views.duration, money=views.money)
    return t


class PageError(Exception):
    """A service error shown as a page (the JSON API renders the same errors as JSON)."""

    def __init__(self, status_code: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.title = title
        self.detail = detail


@contextmanager
def as_page(title: str = "That did not work") -> Iterator[None]:
    try:
        yield
    except FakeguardError as exc:
        raise PageError(exc.status_code, title, exc.detail) from exc


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    reviewer: Reviewer | None = None,
) -> HTMLResponse:
    context = {"reviewer": reviewer, "csrf": reviewer.csrf if reviewer else "", **context}
    response = templates().TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


def _filters(
    brand_id: str | None, decision: str | None, min_score: float | None
) -> service.Filters:
    return service.Filters(
        brand_id=brand_id or None,
        decision=decision if decision in ("review", "block") else None,
        min_score=min_score,
    )


def _query(f: service.Filters, **extra: Any) -> str:
    params = {
        "brand_id": f.brand_id,
        "decision": f.decision,
        "min_score": f.min_score,
        **extra,
    }
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return ("?" + urlencode(clean)) if clean else ""


def _open(item_id: str | None, f: service.Filters) -> RedirectResponse:
    """Open the next item under the same filters, or the queue saying it is empty."""
    if item_id is None:
        return RedirectResponse(f"/review/queue{_query(f, empty=1)}", status_code=303)
    return RedirectResponse(f"/review/items/{item_id}{_query(f)}", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only our own pages: no open redirect to another site."""
    if target and target.startswith("/review") and not target.startswith("//"):
        return target
    return "/review/queue"


BrandQ = Annotated[str | None, Query(max_length=36)]
DecisionQ = Annotated[str | None, Query(max_length=16)]
ScoreQ = Annotated[float | None, Query(ge=0, le=1)]


# -- sign-in ---------------------------------------------------------------------------------


@router.get("")
def home() -> RedirectResponse:
    """The queue is the start page."""
    return RedirectResponse("/review/queue", status_code=303)


def _sign_in_page(
    request: Request, next_: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    nonce = new_signin_nonce()
    response = render(
        request,
        "sign_in.html",
        {"nonce": nonce, "next": _safe_next(next_), "error": error},
        status_code=status_code,
    )
    set_cookie(request, response, SIGNIN_COOKIE, nonce, SIGNIN_NONCE_SECONDS)
    return response


@router.get("/sign-in", response_model=None)
def sign_in_form(request: Request, reviewer: MaybeReviewer, next: str | None = None) -> Response:
    """The sign-in form (a signed-in reviewer goes straight on)."""
    if reviewer is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _sign_in_page(request, next or "/review/queue")


@router.post("/sign-in", response_model=None)
def sign_in_submit(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    key: Annotated[str, Form(max_length=300)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/review/queue",
) -> Response:
    """Check the key, open a session, set its cookie and go on."""
    check_signin_nonce(request, csrf)
    try:
        token = sign_in(session, key, timedelta(seconds=ctx.settings.review_session_seconds))
    except SignInFailed as exc:
        return _sign_in_page(request, next, exc.message, exc.status_code)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, int(ctx.settings.review_session_seconds))
    clear_cookie(request, response, SIGNIN_COOKIE)
    return response


@router.post("/sign-out")
def sign_out_submit(
    request: Request, session: SessionDep, reviewer: PostingReviewer
) -> RedirectResponse:
    """End this session and forget its cookie."""
    sign_out(session, reviewer)
    response = RedirectResponse("/review/sign-in", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# -- the queue -------------------------------------------------------------------------------


@router.get("/queue")
def queue_page(
    request: Request,
    session: SessionDep,
    reviewer: PageReviewer,
    brand_id: BrandQ = None,
    decision: DecisionQ = None,
    min_score: ScoreQ = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    empty: bool = False,
) -> HTMLResponse:
    """Open items, riskiest first, with filters and paging."""
    f = _filters(brand_id, decision, min_score)
    result = service.queue(session, f, Page(limit=PAGE_SIZE, offset=offset))
    brands = pages.brand_choices(session)
    return render(
        request,
        "queue.html",
        {
            "page": result,
            "filters": f,
            "brands": brands,
            "brand_names": dict(brands),
            "query": _query(f),
            "prev_query": _query(f, offset=max(0, offset - PAGE_SIZE)) if offset else None,
            "next_query": _query(f, offset=result.next_offset) if result.next_offset else None,
            "empty": empty,
            "me": reviewer.principal.key_id,
        },
        reviewer=reviewer,
    )


@router.post("/next")
def work_next(
    session: SessionDep,
    ctx: ContextDep,
    reviewer: PostingReviewer,
    brand_id: Annotated[str, Form(max_length=36)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    min_score: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> RedirectResponse:
    """Claim the riskiest pending item matching the filters and open it."""
    f = _filters(brand_id, decision, min_score)
    with as_page():
        item_id = pages.next_item(session, ctx, reviewer, f)
    return _open(item_id, f)


# -- one listing -----------------------------------------------------------------------------


@router.get("/items/{item_id}")
def item_page(
    request: Request,
    item_id: str,
    session: SessionDep,
    reviewer: PageReviewer,
    brand_id: BrandQ = None,
    decision: DecisionQ = None,
    min_score: ScoreQ = None,
) -> HTMLResponse:
    """Everything needed to judge one item, and the decision form."""
    f = _filters(brand_id, decision, min_score)
    with as_page("No such item"):
        d = service.item_detail(session, item_id)
    prev_id, next_id = pages.neighbours(session, f, item_id)
    me = reviewer.principal.key_id
    names = pages.key_names(
        session,
        {x.reviewer_key_id for x in d.decisions} | ({d.claimed_by} if d.claimed_by else set()),
    )
    names[me] = "you"
    base = f"/review/items/{item_id}"
    reasons = sorted(d.verdict.reasons, key=lambda r: -abs(r.contribution))
    max_contrib = max([abs(r.contribution) for r in reasons] + [1e-9])
    return render(
        request,
        "item.html",
        {
            "d": d,
            "query": _query(f),
            "filters": f,
            "prev_url": f"/review/items/{prev_id}{_query(f)}" if prev_id else None,
            "next_url": f"/review/items/{next_id}{_query(f)}" if next_id else None,
            "held_by_other": d.claimed_by is not None and d.claimed_by != me,
            "held_by_me": d.claimed_by == me,
            "names": names,
            "title_segments": views.highlight(d.listing.title, d.verdict.spans, "title"),
            "description_segments": views.highlight(
                d.listing.description, d.verdict.spans, "description"
            ),
            "price": views.price_line(d),
            "pairs": views.image_pairs(d, base, "/review/references"),
            "reasons": reasons,
            "max_contrib": max_contrib,
            "evidence_items": views.evidence_items,
            "reason_codes": views.REASON_CODES,
        },
        reviewer=reviewer,
    )


@router.post("/items/{item_id}/claim")
def claim_from_page(
    item_id: str, session: SessionDep, ctx: ContextDep, reviewer: PostingReviewer
) -> JSONResponse:
    """Claim (or extend the claim on) an item when its page opens (409 if someone holds it)."""
    item = service.claim(session, ctx, reviewer.principal, item_id)
    return JSONResponse(
        {
            "claimed_by_you": True,
            "claim_expires_at": item.claim_expires_at.isoformat()
            if item.claim_expires_at
            else None,
        }
    )


@router.post("/items/{item_id}/release")
def release_from_page(item_id: str, session: SessionDep, reviewer: PostingReviewer) -> JSONResponse:
    """Give up this reviewer's claim when the page is left without a decision."""
    item = service.release(session, reviewer.principal, item_id)
    return JSONResponse({"claimed_by_you": False, "status": item.status})


@router.post("/items/{item_id}/decision")
def decide_from_page(
    item_id: str,
    session: SessionDep,
    ctx: ContextDep,
    reviewer: PostingReviewer,
    label: Annotated[str, Form(max_length=16)],
    reason_codes: Annotated[list[str] | None, Form()] = None,
    note: Annotated[str, Form(max_length=5000)] = "",
    verdict_id: Annotated[str, Form(max_length=36)] = "",
    brand_id: Annotated[str, Form(max_length=36)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    min_score: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> RedirectResponse:
    """Decide (claiming first, so an unclaimed item is taken), then open the next item."""
    try:
        body = DecisionIn(
            label=label,  # type: ignore[arg-type]
            note=note.strip() or None,
            reason_codes=[c for c in reason_codes or [] if c.strip()],
            verdict_id=verdict_id or None,
        )
    except ValidationError as exc:
        raise PageError(422, "That decision is not valid", str(exc.errors()[0]["msg"])) from exc
    f = _filters(brand_id, decision, min_score)
    with as_page("The decision was not recorded"):
        service.claim(session, ctx, reviewer.principal, item_id)
        service.decide(session, reviewer.principal, item_id, body)
        nxt = pages.next_item(session, ctx, reviewer, f)
    return _open(nxt, f)


# -- images ----------------------------------------------------------------------------------


@router.get("/items/{item_id}/images/{index}")
def item_image(
    item_id: str, index: int, session: SessionDep, ctx: ContextDep, _: PageReviewer
) -> Response:
    """One listing image of the item (session required)."""
    data, content_type = service.listing_image(session, ctx, item_id, index)
    return Response(data, media_type=content_type, headers=IMAGE_HEADERS)


@router.get("/references/{brand_id}/{reference_id}")
def reference_image(
    brand_id: str,
    reference_id: str,
    session: SessionDep,
    ctx: ContextDep,
    reviewer: PageReviewer,
) -> Response:
    """A brand reference image (session required)."""
    data, content_type = brands_service.reference_image(
        session, ctx, reviewer.principal, brand_id, reference_id
    )
    return Response(data, media_type=content_type, headers=IMAGE_HEADERS)


# -- statistics ------------------------------------------------------------------------------


@router.get("/stats")
def stats_page(
    request: Request,
    session: SessionDep,
    reviewer: PageReviewer,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> HTMLResponse:
    """Review statistics with the volume chart."""
    figures = stats.review_stats(session, days)
    return render(
        request,
        "stats.html",
        {"s": figures, "chart": views.volume_chart(figures.volume)},
        reviewer=reviewer,
    )


# -- wiring ----------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to the app."""
    app.include_router(router)
    app.mount("/review/static", StaticFiles(directory=HERE / "static"), name="review-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in_required(request: Request, _: SignInRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"/review/sign-in?{urlencode({'next': target})}", status_code=303
            )
        return render(
            request,
            "error.html",
            {
                "title": "Signed out",
                "detail": "Your session has ended. Sign in again, then repeat the action.",
            },
            status_code=401,
        )

    @app.exception_handler(CsrfRejected)
    async def _csrf_rejected(request: Request, _: CsrfRejected) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "Form rejected",
                "detail": "This form did not carry a valid security token (it may be from an "
                "old tab or another site). Reload the page and try again.",
            },
            status_code=403,
        )

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(
            request, "error.html", {"title": exc.title, "detail": exc.detail}, exc.status_code
        )
