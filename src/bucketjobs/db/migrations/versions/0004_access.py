"""Bucket grants, refresh-token families and per-user token revocation.

Revision ID: 0004
Revises: 0003
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
        "bucket_grants",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column(
            "component_id",
            sa.Integer(),
            sa.ForeignKey("storage_components.id", ondelete="CASCADE"),
        ),
        sa.Column("bucket_pattern", sa.Text()),
        sa.Column("access", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "component_id", "bucket_pattern"),
        sa.CheckConstraint("access IN ('READ', 'WRITE')", name="ck_bucket_grants_access"),
    )
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("current", sa.Text(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_refresh_families_user", "refresh_families", ["user_id"])
    op.create_index("ix_refresh_families_expiry", "refresh_families", ["expires_at"])
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("users", "token_generation")
    op.drop_table("refresh_families")
    op.drop_table("bucket_grants")
