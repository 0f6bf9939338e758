"""Database: table definitions, engine/session helpers, embedded PostgreSQL, migrations."""
