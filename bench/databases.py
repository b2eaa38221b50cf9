"""Throwaway databases for the bench scripts: a temporary SQLite file, or a fresh PostgreSQL
database on 127.0.0.1 that is dropped afterwards (never ``test``, ``test_test`` or ``postgres``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


@contextmanager
def bench_project(database: str, name: str) -> Iterator[str]:
    """The example project on a throwaway, migrated database, with handlers run inline and
    replies only logged (no portal is called); yields the DATABASE_URL.  Django is set up
    inside, so the script imports the app's modules after entering this block."""
    with throwaway_database(database, name) as url:
        os.environ["DATABASE_URL"] = url
        os.environ["DEBUG"] = "False"
        os.environ.setdefault("SECRET_KEY", "bench-only")
        os.environ["IMBOT_SENDER"] = "imbot_app.outbound.calls.PendingSender"
        os.environ["IMBOT_DISPATCH"] = "inline"
        os.environ["IMBOT_LOG_LEVEL"] = "WARNING"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        try:
            yield url
        finally:
            connections.close_all()
