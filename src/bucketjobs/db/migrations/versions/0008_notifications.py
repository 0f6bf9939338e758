"""Notification targets and their bindings to buckets (SPEC §4, issue 13).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_targets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("config", JSONB(), nullable=False),
        sa.Column("config_enc", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "bucket_notifications",
        sa.Column(
            "component_id",
            sa.Integer(),
            sa.ForeignKey("storage_components.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("bucket_name", sa.Text(), nullable=False),
        sa.Column(
            "target_id",
            sa.Integer(),
            sa.ForeignKey("notification_targets.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("events", ARRAY(sa.Text()), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False, server_default=""),
        sa.Column("suffix", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("component_id", "bucket_name", "target_id"),
    )
    op.create_index("ix_bucket_notifications_target", "bucket_notifications", ["target_id"])


def downgrade() -> None:
    op.drop_table("bucket_notifications")
    op.drop_table("notification_targets")
