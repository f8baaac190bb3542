"""Responses rendered by the route itself."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as JSON, serialised once, in the route's own thread.

    A route that returns the model itself has FastAPI validate it again against the declared
    ``response_model`` (in one more thread-pool hop for a ``def`` route) before serialising
    it. Routes declare ``response_model`` all the same: it is what OpenAPI documents.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
