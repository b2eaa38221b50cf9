"""v2 events through the webhook's store: redacted, deduplicated per bot, rows written.

These go through the same calls the endpoint makes
(``parse_envelope`` -> ``protocol.v2.events.parse_event`` -> ``store_event(dedup=dedup_key)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from imbot_app import events as ev
from imbot_app.dispatch import fetch
from imbot_app.inbound.auth import Authenticated
from imbot_app.inbound.store import StoreResult, store_event
from imbot_app.models import Bot, Chat, ChatUser, Credential, Event, Message, Portal
from imbot_app.protocol.v1.events import parse_envelope
from imbot_app.protocol.v2 import events as v2
from imbot_app.testing import FakeBitrix24, V2Event, V2EventFactory
from imbot_app.wire import decode_form

from .test_v2_fetch import _fill as _fill_queue
from .test_v2_fetch import _setup as _setup_fetch


@pytest.fixture
def portal_events(db: None) -> tuple[Portal, V2EventFactory]:
    events = V2EventFactory()
    portal = Portal.objects.create(
        member_id=events.member_id, domain=events.domain, application_token="x"
    )
    return portal, events


def _store(portal: Portal, payload: dict[str, Any]) -> StoreResult:
    envelope = parse_envelope(payload)
    event = v2.parse_event(envelope)
    return store_event(
        envelope, event, Authenticated(portal=portal), "127.0.0.1", dedup=v2.dedup_key
    )


def _tokens(event: V2Event, payload: dict[str, Any]) -> set[str]:
    found = set()
    for block in (payload["auth"], payload["data"]["bot"]["auth"]):
        found |= {str(block[k]) for k in ("access_token", "refresh_token", "application_token")}
    return found


@pytest.mark.parametrize("as_form", [False, True], ids=["json", "form"])
def test_a_webhook_message_is_stored_redacted_with_its_rows(
    portal_events: tuple[Portal, V2EventFactory], as_form: bool
) -> None:
    portal, events = portal_events
    event = events.message_add("Hello bot!", group=True, message_id=901)
    payload = decode_form(event.as_form().encode()) if as_form else event.as_webhook()
    secrets = _tokens(event, payload)

    result = _store(portal, payload)

    assert not result.duplicate
    record = Event.objects.get()
    assert record.name == "ONIMBOTV2MESSAGEADD"
    assert record.dedup_key == "ONIMBOTV2MESSAGEADD:bot456:901"
    dumped = json.dumps(record.payload)
    assert not any(secret in dumped for secret in secrets)
    assert record.payload["data"]["bot"]["auth"]["access_token"] == "[redacted]"
    message = Message.objects.get()
    assert (message.message_id, message.text) == (901, "Hello bot!")
    assert message.chat.dialog_id == "chat5" and message.chat.type == "C"
    assert message.author is not None and message.author.name == "John Smith"
    assert Bot.objects.get().bot_id == 456
    # The bot's OAuth tokens from data.bot.auth are kept as a Credential (sealed elsewhere).
    assert Credential.objects.filter(portal=portal, user_id=456).exists()
    assert _store(portal, payload).duplicate


def test_two_bots_seeing_one_message_store_two_events(
    portal_events: tuple[Portal, V2EventFactory],
) -> None:
    portal, events = portal_events
    other = V2EventFactory(member_id=events.member_id, bot_id=457, bot_code="other")
    first = _store(portal, events.message_add("hi", group=True, message_id=5).as_webhook())
    second = _store(portal, other.message_add("hi", group=True, message_id=5).as_webhook())
    assert not first.duplicate and not second.duplicate
    assert Event.objects.count() == 2 and Message.objects.count() == 1


def test_every_v2_event_stores(portal_events: tuple[Portal, V2EventFactory]) -> None:
    portal, events = portal_events
    for event in events.every_event():
        assert not _store(portal, event.as_webhook()).duplicate, event.type
    assert Event.objects.filter(status=Event.Status.RECEIVED).count() == 8
    message = Message.objects.get(message_id=789)
    assert message.deleted_at is not None  # MESSAGEDELETE marked it
    assert Bot.objects.get(bot_id=456).deleted_at is not None  # ONIMBOTV2DELETE
    assert ChatUser.objects.filter(user_id=1).exists()
    assert Chat.objects.filter(dialog_id="chat5").exists()


def test_fetched_and_private_dialogs_key_by_bot(
    portal_events: tuple[Portal, V2EventFactory],
) -> None:
    portal, events = portal_events
    item = events.message_add("hi").as_fetch(event_id=31)
    _store(portal, v2.fetch_payload(item, member_id=portal.member_id))
    chat = Chat.objects.get()
    assert chat.dialog_id == "1" and chat.type == "P"
    assert chat.bot is not None and chat.bot.bot_id == 456


# --------------------------------------------------------------------------- hostile pages


@pytest.fixture
def b24() -> Iterator[FakeBitrix24]:
    with FakeBitrix24() as fake:
        yield fake


@pytest.mark.django_db
def test_an_item_over_the_depth_limit_is_kept_as_a_summary(
    b24: FakeBitrix24, settings: Any
) -> None:
    settings.IMBOT_MAX_DEPTH = 8
    events = V2EventFactory.connected(b24)
    state = fetch.state_for(Bot.objects.get(bot_id=events.bot_id))
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]
    data = events.message_add().data
    data["message"]["params"] = deep
    bad = b24.v2.enqueue(events.member_id, events.bot_id, "ONIMBOTV2MESSAGEADD", data)
    fine = events.enqueue(b24, events.message_add("ok"))

    result = fetch.poll_bot(state)

    assert (result.stored, result.invalid) == (2, 1)
    invalid = Event.objects.get(status=Event.Status.INVALID)
    assert invalid.payload["eventId"] == bad
    assert "x" not in json.dumps(invalid.payload["item"])  # the deep data was not kept
    assert "nested deeper than 8" in invalid.error
    assert Message.objects.get().text == "ok"
    state.refresh_from_db()
    assert state.offset == fine + 1


@pytest.mark.django_db
def test_an_item_with_too_many_fields_is_kept_as_a_summary(
    b24: FakeBitrix24, settings: Any
) -> None:
    settings.IMBOT_MAX_FIELDS = 100
    events = V2EventFactory.connected(b24)
    state = fetch.state_for(Bot.objects.get(bot_id=events.bot_id))
    data = events.message_add().data
    data["message"]["params"] = {str(i): i for i in range(150)}
    b24.v2.enqueue(events.member_id, events.bot_id, "ONIMBOTV2MESSAGEADD", data)
    assert fetch.poll_bot(state).invalid == 1
    assert "more than 100 fields" in Event.objects.get().error


def test_the_system_check_names_bad_fetch_settings(settings: Any) -> None:
    settings.IMBOT_FETCH_IDLE_INTERVAL = 60
    settings.IMBOT_FETCH_LIMIT = 5000
    found = [m for m in run_checks() if m.id == "imbot_app.E030"]
    assert len(found) == 2
    assert "5-30 s" in found[0].msg and "1-1000" in found[1].msg


def test_reaction_and_context_events_are_typed() -> None:
    events = V2EventFactory()
    reaction = v2.parse_event(parse_envelope(events.reaction_change(3).as_webhook()))
    assert isinstance(reaction, ev.ReactionChange) and reaction.added
    context = v2.parse_event(parse_envelope(events.context_get().as_webhook()))
    assert isinstance(context, ev.ContextGet) and context.context["entityType"] == "task"


@pytest.mark.django_db
def test_the_admin_shows_each_bots_polling_state(b24: FakeBitrix24, admin_client: Any) -> None:
    events, state = _setup_fetch(b24)
    _fill_queue(b24, events, 2)
    fetch.poll_bot(state)
    b24.throttle(1)
    fetch.poll_bot(state)
    state.refresh_from_db()
    listing = admin_client.get(reverse("admin:imbot_app_botfetchstate_changelist"))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert str(state.offset) in html and "QUERY_LIMIT_EXCEEDED" in html
    detail = admin_client.get(reverse("admin:imbot_app_botfetchstate_change", args=[state.pk]))
    assert detail.status_code == 200
    assert "QUERY_LIMIT_EXCEEDED" in detail.content.decode()
