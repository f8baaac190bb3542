"""The id of the request being handled (set by api.observability.RequestContext)."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("fakeguard_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
