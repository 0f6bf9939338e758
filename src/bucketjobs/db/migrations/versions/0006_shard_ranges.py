"""A shard may be a key range of its listing: it ends at `last_key` (inclusive).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job_shards", sa.Column("last_key", sa.Text()))


def downgrade() -> None:
    op.drop_column("job_shards", "last_key")
