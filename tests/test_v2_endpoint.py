"""Chatbots 2.0 webhook deliveries through ``POST /imbot/events/``: form-encoded and JSON.

Authenticated by the top-level ``auth[application_token]`` like v1 (never the bot's
``data[bot][auth]``), typed by the v2 adapter, stored with their rows, deduplicated with the v2
rule (``protocol.dedup_for``: one key per bot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imbot_app.models import Bot, Chat, ChatUser, CommandInvocation, Event, Message, Portal
from imbot_app.testing import V2EventFactory, post_event

from .test_queries import _data_queries, _sql

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def v2(db: None) -> V2EventFactory:
    events = V2EventFactory(event_mode="webhook")
    Portal.objects.create(
        member_id=events.member_id,
        domain=events.domain,
        application_token=events.application_token,
    )
    return events


def _post(client: Any, payload: dict[str, Any], as_json: bool) -> Any:
    return post_event(client, payload, as_json=as_json)


def _corpus(corpus_dir: Path, number: str) -> bytes:
    (path,) = corpus_dir.glob(f"{number}_*.json")
    return path.read_bytes()


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_every_v2_event_is_accepted_typed_and_stored(
    client: Any, v2: V2EventFactory, as_json: bool
) -> None:
    every = v2.every_event()
    for event in every:
        response = _post(client, event.as_webhook(), as_json)
        assert response.status_code == 200, (event.type, response.content)
        assert response.json()["status"] == "accepted", event.type

    stored = list(Event.objects.order_by("pk"))
    assert [e.name for e in stored] == [e.type for e in every]
    assert {e.status for e in stored} == {Event.Status.RECEIVED}
    assert all(e.dedup_key.startswith(f"{e.name}:bot456") for e in stored)
    # Tokens of both auth blocks are redacted before anything is stored.
    for record in stored:
        dumped = json.dumps(record.payload)
        assert v2.application_token not in dumped
        assert record.payload["data"]["bot"]["auth"]["access_token"] == "[redacted]"
    # Added, then edited, then deleted: one row, in the private chat with its author.
    message = Message.objects.get(message_id=789)
    assert message.text == "edited" and message.deleted_at is not None
    assert message.chat.dialog_id == "1" and message.chat.type == "P"
    assert message.author is not None and message.author.name == "John Smith"
    assert Chat.objects.filter(dialog_id="chat5").exists()  # joined
    assert ChatUser.objects.filter(user_id=1).exists()
    assert Bot.objects.filter(bot_id=456).exists()
    invocation = CommandInvocation.objects.get()
    assert (str(invocation.command), invocation.params) == ("/help", "topic")


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_a_second_delivery_is_a_duplicate_per_bot(
    client: Any, v2: V2EventFactory, as_json: bool
) -> None:
    event = v2.message_add("twice", message_id=4001, group=True)
    first = _post(client, event.as_webhook(), as_json).json()
    again = _post(client, event.as_webhook(), as_json).json()
    assert first["status"] == "accepted"
    assert again == {"status": "duplicate", "event_id": first["event_id"]}
    # The same message posted to a second bot in that chat is that bot's own event.
    other = V2EventFactory(
        member_id=v2.member_id, application_token=v2.application_token, bot_id=457
    )
    third = _post(client, other.message_add("twice", message_id=4001).as_webhook(), as_json)
    assert third.json()["status"] == "accepted"
    assert Event.objects.count() == 2


def test_a_wrong_top_level_token_is_refused_even_with_a_right_bot_token(
    client: Any, v2: V2EventFactory
) -> None:
    payload = v2.message_add("hi").as_webhook()
    payload["data"]["bot"]["auth"]["application_token"] = v2.application_token
    payload["auth"]["application_token"] = "f" * 32
    response = _post(client, payload, True)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert not Event.objects.exists()


def test_an_invalid_v2_event_is_kept_and_answered_400(client: Any, v2: V2EventFactory) -> None:
    payload = v2.message_add("hi").as_webhook()
    del payload["data"]["message"]["id"]
    response = _post(client, payload, False)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_event"
    assert body["detail"] == {"data": {"message": {"id": ["This field is required."]}}}
    assert Event.objects.get(pk=body["event_id"]).status == Event.Status.INVALID


# --------------------------------------------------------------------------- corpus


def _docs_portal(member_id: str = "b" * 32) -> Portal:
    """The portal the v2 tutorial's samples (075, 077) come from."""
    return Portal.objects.create(
        member_id=member_id,
        domain="example.bitrix24.ru",
        application_token="51856fefc120afa4b628cc82d3935cce",
    )


def test_corpus_075_without_member_id_is_taken_for_the_portal_on_its_domain(
    client: Any, corpus_dir: Path
) -> None:
    """The v2 docs' top-level auth is ``{domain, application_token}``: no member_id."""
    portal = _docs_portal()
    response = client.post("/imbot/events/", _corpus(corpus_dir, "075"), content_type=JSON)
    assert response.status_code == 200, response.content
    record = Event.objects.get(pk=response.json()["event_id"])
    assert record.portal == portal
    assert record.dedup_key == "ONIMBOTV2MESSAGEADD:bot456:790"
    message = Message.objects.get()
    assert (message.message_id, message.text, message.chat.dialog_id) == (790, "что горит", "chat5")
    # Delivered again: found as the duplicate it is (no 5xx on the unique key).
    again = client.post("/imbot/events/", _corpus(corpus_dir, "075"), content_type=JSON)
    assert again.json() == {"status": "duplicate", "event_id": record.pk}


def test_corpus_077_join_is_stored_with_its_chat(client: Any, corpus_dir: Path) -> None:
    _docs_portal()
    response = client.post("/imbot/events/", _corpus(corpus_dir, "077"), content_type=JSON)
    assert response.status_code == 200, response.content
    assert Event.objects.get().name == "ONIMBOTV2JOINCHAT"
    assert Chat.objects.get(dialog_id="chat5").chat_id == 5


def test_corpus_075_is_refused_when_no_portal_or_two_portals_have_its_domain(
    client: Any, corpus_dir: Path
) -> None:
    body = _corpus(corpus_dir, "075")
    assert client.post("/imbot/events/", body, content_type=JSON).status_code == 403
    _docs_portal("b" * 32)
    _docs_portal("c" * 32)
    assert client.post("/imbot/events/", body, content_type=JSON).status_code == 403
    assert not Event.objects.exists()


def test_corpus_074_placeholder_tokens_are_refused(client: Any, corpus_dir: Path) -> None:
    """The docs' envelope sample: ``application_token: "..."`` matches no portal's token."""
    Portal.objects.create(
        member_id="d" * 32, domain="your-portal.bitrix24.ru", application_token="e" * 32
    )
    response = client.post("/imbot/events/", _corpus(corpus_dir, "074"), content_type=JSON)
    assert response.status_code == 403
    assert not Event.objects.exists()


def test_corpus_074_with_a_matching_token_is_kept_as_invalid(client: Any, corpus_dir: Path) -> None:
    """Were its token right, its empty ``message`` would still name what is missing."""
    Portal.objects.create(
        member_id="d" * 32, domain="your-portal.bitrix24.ru", application_token="..."
    )
    response = client.post("/imbot/events/", _corpus(corpus_dir, "074"), content_type=JSON)
    assert response.status_code == 400
    assert response.json()["detail"] == {"data": {"message": {"id": ["This field is required."]}}}
    assert Event.objects.get().status == Event.Status.INVALID


def test_corpus_076_fragment_has_no_auth_and_is_refused(client: Any, corpus_dir: Path) -> None:
    _docs_portal()
    response = client.post("/imbot/events/", _corpus(corpus_dir, "076"), content_type=JSON)
    assert response.status_code == 403
    assert not Event.objects.exists()


# --------------------------------------------------------------------------- SQL


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_a_v2_message_costs_what_a_v1_message_costs(
    client: Any, v2: V2EventFactory, as_json: bool, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(client, v2.message_add("warm up").as_webhook(), as_json).status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = _post(client, v2.message_add("counted").as_webhook(), as_json)
    assert response.status_code == 200
    # Portal, event, credentials, chat, author, message, as for v1 (tests/test_queries.py).
    assert len(_data_queries(context)) == 6, _sql(context)
