"""The same delivery twice is stored once, sequentially and at the same moment (PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from imbot_app.models import CommandInvocation, Event, Message
from imbot_app.testing import EventFactory, post_event


def status_of(response: Any) -> str:
    assert response.status_code == 200, response.content
    return str(response.json()["status"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda f: f.message("twice"), id="message"),
        pytest.param(lambda f: f.message("twice", chat_id=5), id="group-message"),
        pytest.param(lambda f: f.command("echo", "x"), id="command"),
        pytest.param(lambda f: f.join(), id="join"),
        pytest.param(lambda f: f.message_update(10, "edited"), id="update"),
        pytest.param(lambda f: f.message_delete(10), id="delete"),
        pytest.param(lambda f: f.bot_delete(), id="bot-delete"),
    ],
)
def test_sequential_duplicate_is_answered_and_stored_once(client, factory, build) -> None:
    payload = build(factory)
    first = post_event(client, payload)
    second = post_event(client, payload)
    assert status_of(first) == "accepted"
    assert status_of(second) == "duplicate"
    assert first.json()["event_id"] == second.json()["event_id"]
    assert Event.objects.count() == 1
    assert Message.objects.count() <= 1
    assert CommandInvocation.objects.count() <= 1


@pytest.mark.django_db
def test_redelivery_with_fresh_tokens_is_still_a_duplicate(client, factory) -> None:
    payload = factory.message("same message", message_id=900)
    status_of(post_event(client, payload))
    again = factory.message("same message", message_id=900)  # new tokens, new ts
    assert status_of(post_event(client, again)) == "duplicate"


@pytest.mark.django_db
def test_two_edits_of_one_message_are_two_events(client, factory) -> None:
    assert status_of(post_event(client, factory.message_update(11, "v2"))) == "accepted"
    assert status_of(post_event(client, factory.message_update(11, "v3"))) == "accepted"
    assert Message.objects.get(message_id=11).text == "v3"


@pytest.mark.django_db
def test_two_keyboard_clicks_on_one_message_are_two_events(client, factory) -> None:
    first = factory.command("next", "2", context="KEYBOARD", message_id=12, ts="1772109486")
    second = factory.command("next", "2", context="KEYBOARD", message_id=12, ts="1772109499")
    assert status_of(post_event(client, first)) == "accepted"
    assert status_of(post_event(client, second)) == "accepted"
    assert CommandInvocation.objects.count() == 2


@pytest.mark.django_db
def test_the_same_message_id_on_two_portals_is_not_a_duplicate(client, factory) -> None:
    other = EventFactory.installed()
    assert status_of(post_event(client, factory.message("a", message_id=13))) == "accepted"
    assert status_of(post_event(client, other.message("b", message_id=13))) == "accepted"
    assert Message.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("copies", [2, 8])
def test_concurrent_copies_are_stored_once(copies: int) -> None:
    factory = EventFactory.installed()
    payload = factory.command("echo", "race", chat_id=77)
    barrier = threading.Barrier(copies)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            client = Client()
            barrier.wait(timeout=10)
            answers.append(post_event(client, payload))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    statuses = sorted(status_of(a) for a in answers)
    assert statuses == ["accepted"] + ["duplicate"] * (copies - 1)
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert Event.objects.count() == 1
    assert Message.objects.count() == 1
    assert CommandInvocation.objects.count() == 1
