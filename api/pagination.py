"""Limit/offset paging shared by every list endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel


class Page(BaseModel):
    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=500, description="items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(_page)]


class PageInfo(BaseModel):
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, page: Page, total: int, returned: int) -> PageInfo:
        nxt = page.offset + returned
        return cls(
            total=total,
            limit=page.limit,
            offset=page.offset,
            next_offset=nxt if nxt < total else None,
        )
