"""Server errors leave a log line with the example settings; a locked database is a 503."""

from __future__ import annotations

import copy
import io
import logging.config
import sqlite3
from collections.abc import Iterator
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
    """The default connection gives up on a lock after 0.2 s instead of 5 (reconnects)."""
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


@pytest.mark.django_db(transaction=True)
def test_a_locked_sqlite_database_answers_503_with_a_reason_and_a_log_line(
    client, caplog, quick_sqlite_timeout
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database lock")
    factory = EventFactory.installed()
    caplog.set_level(logging.ERROR, logger="imbot_app")
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.2)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        response = post_event(client, factory.message(text="while locked"))
    finally:
        other.rollback()
        other.close()

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "database unavailable" in caplog.text and "locked" in caplog.text
    # Once the lock is gone, events are stored again.
    assert post_event(client, factory.message(text="after")).status_code == 200
    assert Event.objects.count() == 1
