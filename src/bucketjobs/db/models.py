"""Table definitions (SQLAlchemy Core). Alembic migrations in `migrations/` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

installation = Table(
    "installation",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Tokens carry the generation they were issued in; a password change moves it on.
    Column("token_generation", Integer, nullable=False, server_default="0"),
)

storage_components = Table(
    "storage_components",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("storage_type", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("access_key_enc", Text, nullable=False),
    Column("secret_key_enc", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="ACTIVE"),
    Column("is_primary", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("uq_storage_primary", "is_primary", unique=True, postgresql_where=text("is_primary")),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("job_type", Text, nullable=False),
    Column("bucket_name", Text, nullable=False),
    Column("component_id", Integer, ForeignKey("storage_components.id"), nullable=False),
    Column("state", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("message", Text),
    Column("result", JSONB),
    # What the job's preparation found (e.g. whether to list versions), for every worker.
    Column("plan", JSONB),
    # BATCH_REPLICATE with replicationFilter=FAILED: the job whose failed keys it copies.
    Column("source_job_id", Integer),
    Column("total", BigInteger, nullable=False, server_default="0"),
    Column("processed", BigInteger, nullable=False, server_default="0"),
    Column("failed", BigInteger, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("bytes", BigInteger, nullable=False, server_default="0"),
    # Planning: whether every shard of the key space has been cut into partitions.
    Column("enum_done", Boolean, nullable=False, server_default="false"),
    Column("partitions_planned", Integer, nullable=False, server_default="0"),
    Column("partitions_done", Integer, nullable=False, server_default="0"),
    Index("ix_jobs_page", text("created_at DESC"), text("id DESC")),
    Index("ix_jobs_user_page", "user_id", text("created_at DESC"), text("id DESC")),
    Index("ix_jobs_bucket_page", "bucket_name", text("created_at DESC"), text("id DESC")),
    # At most one non-terminal job of a type per bucket: JOB_ALREADY_ACTIVE is enforced here.
    Index(
        "uq_jobs_active",
        "component_id",
        "bucket_name",
        "job_type",
        unique=True,
        postgresql_where=text("state IN ('EXAMINING', 'PROCESSING', 'EXECUTING')"),
    ),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

job_shards = Table(
    "job_shards",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("shard", Integer, primary_key=True),
    # The listing this shard enumerates (storage.listing.Scope), listed beside the others.
    Column("prefix", Text, nullable=False),
    Column("delimited", Boolean, nullable=False, server_default="false"),
    Column("cursor", Text),  # last key written into one of its partitions
    # A key range of the listing ends at this key (inclusive); null: the listing's end.
    Column("last_key", Text),
    Column("done", Boolean, nullable=False, server_default="false"),
)

job_partitions = Table(
    "job_partitions",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    # The listing of its shard (NULL prefix: the job's prefix) and, in it, the key range
    # (start_after, last_key]; NULL start_after = the listing's start, NULL last_key = its end.
    Column("prefix", Text),
    Column("delimited", Boolean, nullable=False, server_default="false"),
    Column("start_after", Text),
    Column("last_key", Text),
    Column("next_key", Text),  # first key of the next range: a stop that holds in any order
    Column("entries", Integer, nullable=False),
    Column("done", Boolean, nullable=False, server_default="false"),
    Column("done_by", Text),  # host:pid of the worker that completed it, for operators
    Column("result", JSONB),
)

job_failures = Table(
    "job_failures",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("version_id", Text),
    Column("error_code", Text, nullable=False),
    Column("http_status", Integer),
    Column("message", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("ix_job_failures_job", "job_id", "id"),
    Index("ix_job_failures_key", "job_id", text('key COLLATE "C"')),
)

# What a dry run would act on: the first SAMPLE_SIZE objects in key order (byte order),
# kept as partitions commit and trimmed to that many at each commit.
job_affected = Table(
    "job_affected",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("version_id", Text, nullable=False),  # "" for a key's current version
    Column("action", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("job_id", "key", "version_id"),
)

bucket_metrics = Table(
    "bucket_metrics",
    metadata,
    Column("component_id", Integer, ForeignKey("storage_components.id"), primary_key=True),
    Column("bucket_name", Text, primary_key=True),
    Column("metrics", JSONB, nullable=False),
    Column("reconciled_at", DateTime(timezone=True), nullable=False),
    Column("job_id", Integer),
)

# SPEC §2 "Bucket access": a user's bucket patterns, per component, READ or WRITE.
bucket_grants = Table(
    "bucket_grants",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "component_id",
        Integer,
        ForeignKey("storage_components.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("bucket_pattern", Text, primary_key=True),
    Column("access", Text, nullable=False),
)

# One row per login: the refresh token currently valid in it. A refresh rotates `current`;
# presenting an older token of the family (a stolen copy) revokes the family.
refresh_families = Table(
    "refresh_families",
    metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("current", Text, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default="false"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_refresh_families_user", "user_id"),
    Index("ix_refresh_families_expiry", "expires_at"),
)

# SPEC §4 targets: `config` as answers show it (secrets masked), the whole config encrypted.
notification_targets = Table(
    "notification_targets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("config_enc", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A bucket's bindings (on one component), in the order they were set. A bound target cannot
# be deleted (RESTRICT): events silently going nowhere is worse than a refused delete.
bucket_notifications = Table(
    "bucket_notifications",
    metadata,
    Column(
        "component_id",
        Integer,
        ForeignKey("storage_components.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("bucket_name", Text, primary_key=True),
    Column(
        "target_id",
        Integer,
        ForeignKey("notification_targets.id", ondelete="RESTRICT"),
        primary_key=True,
    ),
    Column("position", Integer, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("prefix", Text, nullable=False, server_default=""),
    Column("suffix", Text, nullable=False, server_default=""),
    Index("ix_bucket_notifications_target", "target_id"),
)
