"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.context import AppContext
from api.deps import ContextDep
from api.errors import error_body
from store.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
def readyz(ctx: ContextDep) -> JSONResponse:
    """Ready to serve: the database answers and its schema is at the newest migration."""
    checks: dict[str, str] = {}
    ready = True
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, head = current_revision(ctx.engine), head_revision()
        if revision == head:
            checks["migrations"] = f"at head {head}"
        else:
            checks["migrations"] = f"database at {revision}, code expects {head}"
            ready = False
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    checks["model"] = _model_check(ctx)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    if not ready:
        return JSONResponse(
            error_body("not_ready", "; ".join(f"{k}: {v}" for k, v in checks.items()), **body),
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse(body)


def _model_check(ctx: AppContext) -> str:
    """The text model this worker serves, and a newer one it refused (informational: a worker
    keeps serving the model it had, so a refusal does not make it unready)."""
    status = ctx.scoring.model_status()
    served = status["version"] or "none loaded yet (loads with the first scoring)"
    if status["error"]:
        return f"{served}; refused: {status['error']}"
    return str(served)
