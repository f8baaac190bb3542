"""The append-only audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.tables import AuditEvent


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        action: str,
        object_type: str,
        object_id: str | None,
        *,
        actor_key_id: str | None,
        brand_id: str | None = None,
        detail: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            action=action,
            object_type=object_type,
            object_id=object_id,
            actor_key_id=actor_key_id,
            brand_id=brand_id,
            detail=detail or {},
            note=note,
        )
        self.session.add(event)
        self.session.flush()
        return event

    def page(
        self, *, brand_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEvent], int]:
        query = select(AuditEvent)
        count = select(func.count()).select_from(AuditEvent)
        if brand_id is not None:
            query = query.where(AuditEvent.brand_id == brand_id)
            count = count.where(AuditEvent.brand_id == brand_id)
        rows = self.session.scalars(
            query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
        ).all()
        return list(rows), self.session.scalar(count) or 0
