"""Tell API processes when a job changes, so `jobs/events` streams follow it without polling.

Every UPDATE of a `jobs` row that changes what the Job object shows (state, counters,
message, result) sends the job's id on the `bucketjobs_jobs` channel (api/job_feed.py). A
trigger, not the engine's code: whatever changes a job reaches every API process.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bucketjobs_jobs', NEW.id::text);
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER job_changed AFTER UPDATE ON jobs FOR EACH ROW
        WHEN (OLD.state IS DISTINCT FROM NEW.state
              OR OLD.processed IS DISTINCT FROM NEW.processed
              OR OLD.failed IS DISTINCT FROM NEW.failed
              OR OLD.skipped IS DISTINCT FROM NEW.skipped
              OR OLD.total IS DISTINCT FROM NEW.total
              OR OLD.bytes IS DISTINCT FROM NEW.bytes
              OR OLD.message IS DISTINCT FROM NEW.message
              OR OLD.result IS DISTINCT FROM NEW.result)
        EXECUTE FUNCTION notify_job_changed()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER job_changed ON jobs")
    op.execute("DROP FUNCTION notify_job_changed()")
