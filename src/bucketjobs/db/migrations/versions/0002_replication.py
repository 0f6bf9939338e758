"""BATCH_REPLICATE: the job a FAILED re-run takes its keys from; failures found by key.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("source_job_id", sa.Integer(), nullable=True))
    # A FAILED re-run walks its source job's failed keys in byte order, range by range.
    op.execute('CREATE INDEX ix_job_failures_key ON job_failures (job_id, key COLLATE "C")')


def downgrade() -> None:
    op.execute("DROP INDEX ix_job_failures_key")
    op.drop_column("jobs", "source_job_id")
