"""The webhook's hot path, counted in SQL queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imbot_app.testing import post_event

pytestmark = pytest.mark.django_db

MAX_QUERIES_PER_KNOWN_MESSAGE = 8


TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")


def _data_queries(context: CaptureQueriesContext) -> list[dict[str, str]]:
    return [q for q in context.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]


def _sql(context: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"][:120] for q in context.captured_queries)


@pytest.mark.parametrize("chat_id", [None, 31], ids=["private", "group"])
def test_message_for_a_known_portal_bot_and_chat(
    client, factory, chat_id, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # as the commit would
        assert post_event(client, factory.message("warm up", chat_id=chat_id)).status_code == 200

    with CaptureQueriesContext(connection) as context:
        response = post_event(client, factory.message("counted", chat_id=chat_id))

    assert response.status_code == 200
    assert len(context.captured_queries) <= MAX_QUERIES_PER_KNOWN_MESSAGE, _sql(context)
    # Portal, event, credentials, chat, author, message; the rest is transaction control.
    assert len(_data_queries(context)) == 6, _sql(context)


def test_duplicate_costs_no_more_than_a_new_event(
    client, factory, django_capture_on_commit_callbacks
) -> None:
    payload = factory.message("dup")
    # Handled, as the commit would run it (a duplicate of an event left unhandled runs it).
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, payload).status_code == 200
    with CaptureQueriesContext(connection) as context:
        assert post_event(client, payload).json()["status"] == "duplicate"
    # Portal, the refused insert, the stored copy.
    assert len(_data_queries(context)) == 3, _sql(context)


@pytest.mark.django_db(transaction=True)
def test_known_message_in_autocommit_mode_as_in_production(client, isolated_routes) -> None:
    """Outside a test transaction: the store's own transaction, as a real request has it.

    No handlers are routed, so what is counted is the webhook's own work.
    """
    from imbot_app.testing import EventFactory

    factory = EventFactory.installed()
    assert post_event(client, factory.message("warm up")).status_code == 200
    with CaptureQueriesContext(connection) as context:
        assert post_event(client, factory.message("counted")).status_code == 200

    # After the commit, dispatch marks the event processed (no handler is routed): that is the
    # handlers' cost, not the webhook's.  SQLite shows the commit; PostgreSQL does not.
    queries = context.captured_queries
    ends = [i for i, q in enumerate(queries) if q["sql"] == "COMMIT"]
    ingest = queries[: ends[0] + 1] if ends else queries
    ingest = [q for q in ingest if not q["sql"].startswith('UPDATE "imbot_app_event"')]
    assert len(ingest) <= MAX_QUERIES_PER_KNOWN_MESSAGE, _sql(context)
    data = [q for q in ingest if not q["sql"].startswith(TRANSACTION_CONTROL)]
    assert len(data) == 6, _sql(context)
