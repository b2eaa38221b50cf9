"""Server errors leave a log line with the example settings; a locked database is a 503."""

from __future__ import annotations

import copy
import io
import logging.config
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from imbot_app.models import Event
from imbot_app.testing import EventFactory, post_event


@pytest.fixture
def example_logging() -> Iterator[io.StringIO]:
    """project/settings.py's LOGGING, as it is, but its console writing into a buffer."""
    config: dict[str, Any] = copy.deepcopy(django_settings.LOGGING)
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        yield stream
    finally:
        logging.config.dictConfig(django_settings.LOGGING)


@pytest.mark.urls("tests.boom_urls")
@pytest.mark.django_db
def test_a_500_is_logged_by_the_example_logging_config(example_logging, settings) -> None:
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")

    assert response.status_code == 500
    logged = example_logging.getvalue()
    assert "ERROR django.request: Internal Server Error: /boom/" in logged
    assert "RuntimeError: an unexpected bug" in logged  # with its traceback


@pytest.fixture
def quick_sqlite_timeout() -> Iterator[None]:
    """SQLite: the connection gives up on a lock after 0.2 s instead of 20 (reconnects)."""
    if connection.vendor != "sqlite":
        yield
        return
    options = connection.settings_dict.setdefault("OPTIONS", {})
    before = options.get("timeout")
    connection.close()
    options["timeout"] = 0.2
    try:
        yield
    finally:
        connection.close()
        if before is None:
            options.pop("timeout", None)
        else:
            options["timeout"] = before


@contextmanager
def database_locked_by_another_process() -> Iterator[None]:
    """Another connection holds the lock an event's INSERT needs, past this one's patience.

    SQLite: the database's write lock (0.2 s timeout, see quick_sqlite_timeout).  PostgreSQL:
    the event table, with a 200 ms ``lock_timeout`` on this connection.
    """
    if connection.vendor == "sqlite":
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.2)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
        finally:
            other.rollback()
            other.close()
        return
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**params) as holder, holder.transaction():
        holder.execute("LOCK TABLE imbot_app_event IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_answers_503_with_a_reason_and_a_log_line(
    client, caplog, quick_sqlite_timeout
) -> None:
    factory = EventFactory.installed()
    caplog.set_level(logging.ERROR, logger="imbot_app")
    with database_locked_by_another_process():
        response = post_event(client, factory.message(text="while locked"))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "database unavailable" in caplog.text
    assert "locked" in caplog.text or "lock timeout" in caplog.text
    # Once the lock is gone, events are stored again.
    assert post_event(client, factory.message(text="after")).status_code == 200
    assert Event.objects.count() == 1
