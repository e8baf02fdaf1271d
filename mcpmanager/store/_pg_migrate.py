"""Apply ``migrations.MIGRATIONS`` to one PostgreSQL schema, once, under an advisory lock."""

from __future__ import annotations

from typing import Any

import psycopg

from mcpmanager.store import _pg_sql as q
from mcpmanager.store.migrations import MIGRATIONS, POSTGRES_BOOTSTRAP

from .._log import get_logger

logger = get_logger("mcpmanager.store")


def migrate(conn: psycopg.Connection[Any], schema: str, stmts: q.Statements) -> list[int]:
    """Bring ``schema`` up to date in one transaction; return the versions applied now.

    Concurrent callers (other threads or processes) wait on a transaction-scoped
    advisory lock keyed by the schema, so each migration runs exactly once.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q.ADVISORY_XACT_LOCK, (q.LOCK_CLASS, f"migrate:{schema}"))
        cur.execute(q.SCHEMA_EXISTS, (schema,))
        if cur.fetchone() is None:
            cur.execute(stmts(q.CREATE_SCHEMA))
        cur.execute(stmts(POSTGRES_BOOTSTRAP))
        cur.execute(stmts(q.APPLIED_MIGRATIONS))
        applied = {int(row[0]) for row in cur.fetchall()}
        done: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.postgres:
                cur.execute(stmts(statement))
            cur.execute(stmts(q.RECORD_MIGRATION), (migration.version, migration.name))
            done.append(migration.version)
    for version in done:
        logger.info("store schema %s: applied migration %d", schema, version)
    return done
