from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.validation import RequestModel

Role = Literal["admin", "ingest", "reviewer", "brand"]


class KeyCreate(RequestModel):
    role: Role
    brand_id: str | None = Field(default=None, description="required for role 'brand'")
    name: str | None = Field(default=None, max_length=200, description="a label for people")


class KeyCreated(BaseModel):
    id: str
    key: str = Field(description="the secret; shown only in this response")
    role: Role
    brand_id: str | None
    name: str | None


class KeyOut(BaseModel):
    id: str
    prefix: str
    role: str
    brand_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyList(BaseModel):
    keys: list[KeyOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
