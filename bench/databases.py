"""Throwaway databases for the bench scripts: a temporary SQLite file, or a fresh PostgreSQL
database on 127.0.0.1 that is dropped afterwards (never ``test``, ``test_test`` or ``postgres``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_SERVER = "postgres://postgres@127.0.0.1:5432/"
PG_MAINTENANCE_DATABASE = "postgres"  # only used to CREATE / DROP the bench database


@contextmanager
def throwaway_database(database: str, name: str, *, query: str = "") -> Iterator[str]:
    """Yield a DATABASE_URL for a fresh, empty database, and remove the database afterwards.

    ``database`` is ``"sqlite"`` or ``"postgres"``; ``name`` names the PostgreSQL database
    (one per script, so two benches never share one); ``query`` is appended to the URL.
    """
    if database == "sqlite":
        folder = tempfile.mkdtemp(prefix=f"{name}-")
        try:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}{query}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    _pg_recreate(name, create=True)
    try:
        yield f"{PG_SERVER}{name}{query}"
    finally:
        _pg_recreate(name, create=False)


def _pg_recreate(name: str, *, create: bool) -> None:
    """Drop the database if it exists, then create it afresh when ``create``."""
    import psycopg
    from psycopg import sql

    identifier = sql.Identifier(name)
    with psycopg.connect(PG_SERVER + PG_MAINTENANCE_DATABASE, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
