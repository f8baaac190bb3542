"""What every request body has in common: text that every supported database can store.

PostgreSQL refuses the NUL character (U+0000) in text; SQLite stores it. Rather than a listing
that is stored on one database and a 500 on the other, a NUL anywhere in a JSON body is a 422
naming the field, on both.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: What the OpenAPI document says of every request string (the validator below enforces it).
NO_NUL = r"^[^\x00]*$"
#: ... and of one that must also hold a non-space character (the ids' and names' r"\S").
NO_NUL_NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
            found = _nul_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def document_no_nul(schema: Any) -> None:
    """Give every string in a JSON schema fragment a pattern that excludes NUL."""
    if isinstance(schema, list):
        for item in schema:
            document_no_nul(item)
        return
    if not isinstance(schema, dict) or "$ref" in schema:
        return
    if schema.get("type") == "string" and schema.get("format") != "binary":
        pattern = schema.get("pattern")
        if pattern is None:
            schema["pattern"] = NO_NUL
        elif pattern == r"\S":
            schema["pattern"] = NO_NUL_NOT_BLANK
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in schema:
            document_no_nul(schema[key])
    if isinstance(schema.get("items"), dict):
        document_no_nul(schema["items"])
    for prop in (schema.get("properties") or {}).values():
        document_no_nul(prop)


class RequestModel(BaseModel):
    """Base of request bodies: refuses the NUL character in any string (see module doc)."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        document_no_nul(handler.resolve_ref_schema(schema))
        return schema

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):  # only what the model reads (extra keys may be ignored)
            data_fields = {k: v for k, v in data.items() if k in cls.model_fields}
            where = _nul_path(data_fields, "")
        else:
            where = _nul_path(data, "")
        if where is not None:
            place = f" (in {where})" if where else ""
            raise ValueError(f"text must not contain the NUL character (U+0000){place}")
        return data


async def no_nul_in_url(request: Request) -> None:
    """App-wide dependency: a NUL in the path or a query parameter is a 422 (see module doc).

    ``async``: no thread-pool hop for a check this small, on every request.
    """
    where = None
    if "\x00" in request.url.path:
        where = "path"
    else:
        for name, value in request.query_params.multi_items():
            if "\x00" in name or "\x00" in value:
                where = f"query.{name}"
                break
    if where is not None:
        raise RequestValidationError(
            [
                {
                    "loc": tuple(where.split(".", 1)),
                    "msg": "text must not contain the NUL character (U+0000)",
                    "type": "value_error",
                }
            ]
        )
