"""reviewer sessions for the review pages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviewer_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_reviewer_sessions_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewer_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_reviewer_sessions_token_hash")),
    )
    with op.batch_alter_table("reviewer_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reviewer_sessions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reviewer_sessions_key_id"), ["key_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviewer_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviewer_sessions_key_id"))
        batch_op.drop_index(batch_op.f("ix_reviewer_sessions_expires_at"))
    op.drop_table("reviewer_sessions")
