"""The migrations build exactly the schema `db/models.py` declares, and go back down."""

from __future__ import annotations

from typing import Any

import psycopg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from bucketjobs.db.migrate import alembic_config, upgrade
from bucketjobs.db.models import metadata
from bucketjobs.db.session import sqlalchemy_url
from tests.support.services import free_port


def _fresh_database(postgres_url: str) -> str:
    name = f"migrations_{free_port()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.replace("/postgres?", f"/{name}?")


def _differences(url: str) -> list:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    # Tables of the queue library live beside ours; they are its migrations' business.
    return [d for d in found if not _procrastinates(d) and not _expression_index(d)]


def _expression_index(difference: Any) -> bool:
    """Alembic reflects an index on an expression (`key COLLATE "C"`) without it, so such an
    index always shows as removed and added again; its definition is checked by name."""
    kind, thing = difference[0], difference[1]
    return kind in ("add_index", "remove_index") and thing.name in EXPRESSION_INDEXES


EXPRESSION_INDEXES = {"ix_job_failures_key"}


def _procrastinates(difference: Any) -> bool:
    """A difference about one of procrastinate's tables or their indexes."""
    kind, thing = difference[0], difference[1]
    table = thing if kind == "remove_table" else getattr(thing, "table", None)
    name = str(getattr(table, "name", ""))
    return kind.startswith("remove_") and name.startswith("procrastinate")


def test_migrations_match_the_models_and_downgrade_cleanly(postgres_url):
    url = _fresh_database(postgres_url)
    upgrade(url)
    assert _differences(url) == []
    with psycopg.connect(url) as conn:
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes").fetchall())
    assert 'key COLLATE "C"' in indexes["ix_job_failures_key"]
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    assert _differences(url) == []
