"""Issue 11, nothing lost: a delivery is a duplicate only when it is the same delivery, a newer
state is never overwritten by an older one, and an event whose handler died is started again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from imbot_app import on_message
from imbot_app.dispatch.context import MessageContext
from imbot_app.models import Event, Message, Portal
from imbot_app.sealing import token_matches
from imbot_app.testing import EventFactory, post_event

pytestmark = pytest.mark.django_db


def status_of(response: Any) -> str:
    assert response.status_code == 200, response.content
    return str(response.json()["status"])


# --------------------------------------------------------------------------- item 12


def test_same_second_reinstall_with_a_new_token_is_a_new_delivery(client, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    events = EventFactory()
    ts = "1772109486"
    assert status_of(post_event(client, events.install(ts=ts))) == "accepted"
    assert status_of(post_event(client, events.uninstall(ts=ts))) == "accepted"
    events.application_token = "token-of-the-second-install"
    assert status_of(post_event(client, events.install(ts=ts))) == "accepted"

    portal = Portal.objects.get()
    assert portal.status == Portal.Status.INSTALLED
    assert token_matches(portal.application_token, "token-of-the-second-install")
    assert status_of(post_event(client, events.message("still here"))) == "accepted"
    # The digest that tells deliveries apart is not a secret's hiding place.
    for key in Event.objects.values_list("dedup_key", flat=True):
        assert "token-of-the-second-install" not in key


def test_a_redelivered_install_is_still_a_duplicate(client, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    payload = EventFactory().install()
    first = post_event(client, payload)
    assert status_of(first) == "accepted"
    again = post_event(client, payload)
    assert status_of(again) == "duplicate"
    assert again.json()["event_id"] == first.json()["event_id"]


# --------------------------------------------------------------------------- item 13


def test_a_redelivered_uninstall_is_a_duplicate_not_a_refusal(client, factory) -> None:
    payload = factory.uninstall()
    first = post_event(client, payload)
    assert status_of(first) == "accepted"
    again = post_event(client, payload)
    assert status_of(again) == "duplicate"
    assert again.json()["event_id"] == first.json()["event_id"]
    # Another uninstall of the uninstalled portal is still refused.
    assert post_event(client, factory.uninstall(clean=True)).status_code == 403


# --------------------------------------------------------------------------- item 14


def test_an_edit_back_to_the_first_text_is_a_new_edit(client, factory) -> None:
    assert status_of(post_event(client, factory.message("typo", message_id=70, ts="100"))) == (
        "accepted"
    )
    for ts, text in (("101", "A"), ("102", "B"), ("103", "A")):
        assert status_of(post_event(client, factory.message_update(70, text, ts=ts))) == (
            "accepted"
        )
    assert Message.objects.get(message_id=70).text == "A"
    assert Event.objects.filter(name="ONIMBOTMESSAGEUPDATE").count() == 3


def test_an_older_state_never_overwrites_a_newer_one(client, factory) -> None:
    # The edit overtakes the message it edits.
    assert status_of(post_event(client, factory.message_update(71, "edited", ts="201"))) == (
        "accepted"
    )
    assert status_of(post_event(client, factory.message("original", message_id=71, ts="200"))) == (
        "accepted"
    )
    assert Message.objects.get(message_id=71).text == "edited"
    # Two edits arriving out of order: the later one stays.
    assert status_of(post_event(client, factory.message_update(71, "third", ts="203"))) == (
        "accepted"
    )
    assert status_of(post_event(client, factory.message_update(71, "second", ts="202"))) == (
        "accepted"
    )
    assert Message.objects.get(message_id=71).text == "third"


# --------------------------------------------------------------------------- item 15


@pytest.fixture
def handled(isolated_routes: Any) -> list[int]:
    seen: list[int] = []

    @on_message
    def record(message: MessageContext) -> None:
        seen.append(message.event.pk)

    return seen


@pytest.mark.parametrize("claim", ["free", "expired"])
def test_a_duplicate_of_an_event_left_received_starts_it_again(
    client, factory, handled, deliver, claim
) -> None:
    payload = factory.message("the worker died on me")
    # Stored, but its handlers never ran: the on-commit hook is not run here, as when the
    # worker was killed between the commit and the handler (or mid-handler, claim expired).
    response = post_event(client, payload)
    event = Event.objects.get(pk=response.json()["event_id"])
    if claim == "expired":
        Event.objects.filter(pk=event.pk).update(
            claimed_by="dead-host:1:abc", claim_expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert handled == []

    again = deliver(payload)

    assert again.json() == {"status": "duplicate", "event_id": event.pk}
    assert handled == [event.pk]
    event.refresh_from_db()
    assert event.status == Event.Status.PROCESSED
    # A later copy finds it done and runs nothing.
    deliver(payload)
    assert handled == [event.pk]


def test_a_duplicate_of_an_event_another_process_holds_does_not_run_it(
    client, factory, handled, deliver
) -> None:
    payload = factory.message("still running elsewhere")
    event_id = post_event(client, payload).json()["event_id"]
    Event.objects.filter(pk=event_id).update(
        claimed_by="live-host:1:abc", claim_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert deliver(payload).json()["status"] == "duplicate"
    assert handled == []
    assert Event.objects.get(pk=event_id).status == Event.Status.RECEIVED
