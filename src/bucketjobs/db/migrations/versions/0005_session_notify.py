"""Tell API processes when a user or a session changes, so they can remember live sessions.

Every UPDATE or DELETE of a `users` or `refresh_families` row sends the user's id on the
`bucketjobs_sessions` channel (auth/live_sessions.py). A trigger, not the code that writes
them: whatever changes a user (the API, the CLI, an operator's SQL) reaches every process.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = {"users": "id", "refresh_families": "user_id"}


def upgrade() -> None:
    for table, column in COLUMN.items():
        op.execute(f"""
            CREATE FUNCTION notify_{table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('bucketjobs_sessions', OLD.{column}::text);
                RETURN NULL;
            END $$
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_changed AFTER UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION notify_{table}_changed()
        """)


def downgrade() -> None:
    for table in COLUMN:
        op.execute(f"DROP TRIGGER {table}_changed ON {table}")
        op.execute(f"DROP FUNCTION notify_{table}_changed()")
