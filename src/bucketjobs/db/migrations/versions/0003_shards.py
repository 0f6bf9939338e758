"""Parallel enumeration: a job's key space in shards, each with its own cursor.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_shards",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE")),
        sa.Column("shard", sa.Integer()),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("delimited", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("cursor", sa.Text()),
        sa.Column("done", sa.Boolean(), nullable=False, server_default="false"),
        sa.PrimaryKeyConstraint("job_id", "shard"),
    )
    op.add_column("job_partitions", sa.Column("prefix", sa.Text()))
    op.add_column(
        "job_partitions",
        sa.Column("delimited", sa.Boolean(), nullable=False, server_default="false"),
    )
    # A job planned before this revision goes on as one shard from its cursor.
    op.execute(
        "INSERT INTO job_shards (job_id, shard, prefix, cursor, done)"
        " SELECT id, 0, coalesce(params->>'prefix', ''), enum_cursor, enum_done FROM jobs"
        " WHERE plan IS NOT NULL AND state IN ('EXAMINING', 'PROCESSING', 'EXECUTING')"
    )
    op.drop_column("jobs", "enum_cursor")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("enum_cursor", sa.Text()))
    op.execute(
        "UPDATE jobs SET enum_cursor = s.cursor FROM job_shards s"
        " WHERE s.job_id = jobs.id AND s.shard = 0"
    )
    op.drop_column("job_partitions", "delimited")
    op.drop_column("job_partitions", "prefix")
    op.drop_table("job_shards")
