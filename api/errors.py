"""One error shape for every response: ``{"error": "<code>", "detail": "..."}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.request_id import current_request_id

log = logging.getLogger("fakeguard.api")


class ErrorBody(BaseModel):
    error: str
    detail: str
    request_id: str | None = None


class FieldProblem(BaseModel):
    field: str
    message: str


class ValidationErrorBody(ErrorBody):
    """422 ``validation_error``: the payload is malformed; ``fields`` says where."""

    fields: list[FieldProblem] | None = Field(
        default=None, description="where the payload is malformed (validation_error only)"
    )


class FakeguardError(Exception):
    """Raised by services; rendered by the one handler below."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers
        self.extra = extra or {}


class Unauthorized(FakeguardError):
    status_code = 401
    code = "unauthorized"


class Forbidden(FakeguardError):
    status_code = 403
    code = "forbidden"


class NotFound(FakeguardError):
    status_code = 404
    code = "not_found"


class Conflict(FakeguardError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(FakeguardError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(FakeguardError):
    status_code = 422
    code = "unprocessable"


class ServiceUnavailable(FakeguardError):
    """503: a dependency (database, blob store, text model) is unavailable; retry later.

    Always carries ``Retry-After`` (``retry_after`` seconds unless the headers give one)."""

    status_code = 503
    code = "unavailable"
    retry_after = 5

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        headers = dict(headers or {})
        headers.setdefault("Retry-After", str(self.retry_after))
        super().__init__(detail, code=code, headers=headers, extra=extra)


class InsufficientStorage(FakeguardError):
    """507: no room to store the images (disk full or quota exceeded); nothing was stored.

    Carries ``Retry-After``: the request can be sent again once storage has been freed."""

    status_code = 507
    code = "insufficient_storage"
    retry_after = 60

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(self.retry_after)})


def error_responses(*errors: type[FakeguardError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route, so every error it can return shows in OpenAPI."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        out[err.status_code] = {"model": ErrorBody, "description": err.__doc__ or err.code}
    return out


AUTH_ERRORS = (Unauthorized, Forbidden)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
    507: "insufficient_storage",
}


def describe_validation_errors(
    errors: Sequence[Any], prefix: str = ""
) -> tuple[str, list[dict[str, str]]]:
    """A one-line summary and the ``{"field", "message"}`` list of pydantic validation errors
    (``prefix`` is put before every field name)."""
    problems = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        field = f"{prefix}.{loc}" if prefix and loc else prefix or loc
        problems.append({"field": field, "message": err.get("msg", "invalid")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return summary or "invalid request", problems


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The one error shape, with the id of the request being handled."""
    return {"error": code, "detail": detail, **extra, "request_id": current_request_id()}


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(FakeguardError)
    async def _fakeguard_error(_: Request, exc: FakeguardError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.detail, **exc.extra), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:  # not JSON at all: the documented 400, not a field problem
            where = broken.get("loc", ())[-1:]
            reason = (broken.get("ctx") or {}).get("error") or broken.get("msg", "")
            at = f" at character {where[0]}" if where and isinstance(where[0], int) else ""
            return JSONResponse(
                error_body("bad_request", f"the body is not valid JSON{at}: {reason}"), 400
            )
        summary, problems = describe_validation_errors(errors)
        return JSONResponse(error_body("validation_error", summary, fields=problems), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path has several.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), 500)


def _allowed_methods(request: Request) -> list[str]:
    """Methods some route answers at this path (asked of the routes themselves)."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
        }
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _ref(name: str, description: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers above really send.

    Every 422 is the one error shape with ``fields`` (not FastAPI's ``HTTPValidationError``);
    operations that take a body may also answer 400 (unparseable body) and 413 (too large).
    """
    from fastapi.openapi.utils import get_openapi

    from api.validation import document_no_nul

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, FieldProblem, ValidationErrorBody):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for param in operation.get("parameters", []):
                    document_no_nul(param.get("schema"))  # what api.validation enforces
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = _ref(
                        "ValidationErrorBody", "Malformed payload, or refused as unprocessable"
                    )
                if "requestBody" in operation:
                    responses.setdefault("400", _ref("ErrorBody", "The body cannot be parsed"))
                    responses.setdefault("413", _ref("ErrorBody", "The body is too large"))
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
