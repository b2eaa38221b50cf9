"""Every sample of the real-payload corpus (../shared/corpus) posted to the event endpoint.

A sample whose ``auth`` carries a ``member_id`` and an ``application_token`` is posted for an
installed portal (ONAPPINSTALL goes through the real install path instead) and must be
accepted and stored as it was sent, tokens redacted; any other sample must be refused with a
4xx and leave nothing behind.  No sample may ever cause a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.test import Client

from imbot_app import events as ev
from imbot_app.models import Bot, Chat, CommandInvocation, Event, Message, Portal
from imbot_app.protocol import KNOWN_EVENTS
from imbot_app.sealing import token_matches
from imbot_app.testing import EVENTS_PATH, EventFactory
from imbot_app.wire import WireError, decode_form

from .conftest import CORPUS_DIR

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
TOKEN_KEYS = frozenset({"access_token", "refresh_token", "application_token"})
REDACTED = "[redacted]"
MESSAGE_EVENTS = (ev.MESSAGE_ADD, ev.MESSAGE_UPDATE, ev.MESSAGE_DELETE)


def _cases() -> list[Any]:
    """One case per corpus file (two for .txt: sent as a form and as JSON)."""
    if not CORPUS_DIR.is_dir():
        # Collected anyway so the corpus_dir fixture can report the skip.
        return [pytest.param("absent", FORM, id="corpus-absent")]
    cases = []
    for path in sorted(CORPUS_DIR.iterdir()):
        if not path.is_file() or path.suffix not in (".form", ".json", ".txt"):
            continue
        if path.suffix == ".form":
            cases.append(pytest.param(path.name, FORM, id=path.name))
        elif path.suffix == ".json":
            cases.append(pytest.param(path.name, JSON, id=path.name))
        else:
            cases.append(pytest.param(path.name, FORM, id=f"{path.name}-as-form"))
            cases.append(pytest.param(path.name, JSON, id=f"{path.name}-as-json"))
    return cases


def _decode(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The sample as the test reads it (independently of the endpoint); None if undecodable."""
    try:
        decoded = decode_form(body) if content_type == FORM else json.loads(body)
    except (WireError, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _auth(decoded: dict[str, Any] | None) -> tuple[str, str]:
    auth = decoded.get("auth") if decoded else None
    if not isinstance(auth, dict):
        return "", ""
    return str(auth.get("member_id") or ""), str(auth.get("application_token") or "")


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, scalar) pair of a nested payload."""
    if isinstance(value, dict):
        for child_key, child in value.items():
            yield from _leaves(child, str(child_key))
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, key)
    else:
        yield key, value


def _secrets(decoded: dict[str, Any], member_id: str) -> set[str]:
    """Token values of the sample (a masked placeholder equal to member_id is not a secret)."""
    values = {
        str(value)
        for key, value in _leaves(decoded)
        if key in TOKEN_KEYS and value not in ("", None)
    }
    values.discard(member_id)
    return values


def _post(client: Client, body: bytes, content_type: str) -> Any:
    return client.post(EVENTS_PATH, data=body, content_type=content_type)


def _assert_form_message(body: bytes, decoded: dict[str, Any]) -> None:
    """Cross-check the decoded text against the standard library's form parser."""
    fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    sent = fields.get("data[PARAMS][MESSAGE]")
    if sent is not None:
        assert decoded["data"]["PARAMS"]["MESSAGE"] == sent[-1]


def _assert_redacted(stored: Any, decoded: dict[str, Any], member_id: str) -> None:
    for key, value in _leaves(stored):
        if key in TOKEN_KEYS and value not in ("", None):
            assert value == REDACTED, f"{key} stored unredacted"
    secrets = _secrets(decoded, member_id)
    for key, value in _leaves(stored):
        assert str(value) not in secrets, f"a token value is stored under {key!r}"
    dumped = json.dumps(stored, ensure_ascii=False)
    for secret in secrets:
        if len(secret) >= 8:
            assert secret not in dumped, "a token value is stored inside another value"


def _assert_message_rows(portal: Portal, name: str, data: dict[str, Any]) -> None:
    params = data["PARAMS"]
    raw_id = params.get("MESSAGE_ID")
    if raw_id in (None, ""):
        raw_id = params["ID"]
    message = Message.objects.get(portal=portal, message_id=int(str(raw_id).strip()))
    if name == ev.MESSAGE_DELETE:
        assert message.deleted_at is not None
    else:
        assert message.text == params.get("MESSAGE", "")
        if "MESSAGE_ORIGINAL" in params:
            assert message.text_original == params["MESSAGE_ORIGINAL"]
    assert message.chat.dialog_id == str(params["DIALOG_ID"])
    _assert_chat(portal, params)


def _assert_chat(portal: Portal, params: dict[str, Any]) -> None:
    chat = Chat.objects.get(portal=portal, dialog_id=str(params["DIALOG_ID"]))
    expected_type = params.get("CHAT_TYPE") or params.get("MESSAGE_TYPE") or ""
    assert chat.type == expected_type


def _assert_invocations(record: Event, data: dict[str, Any]) -> None:
    invocations = list(CommandInvocation.objects.filter(event=record).select_related("command"))
    sent = list(data["COMMAND"].values())
    assert len(invocations) == len(sent)
    stored = sorted((i.command.command, i.params, i.context) for i in invocations)
    expected = sorted(
        (
            str(entry["COMMAND"]),
            str(entry.get("COMMAND_PARAMS", "")),
            str(entry.get("COMMAND_CONTEXT", "")),
        )
        for entry in sent
    )
    assert stored == expected


@pytest.mark.django_db
@pytest.mark.parametrize(("file_name", "content_type"), _cases())
def test_corpus_sample(
    client: Client, settings: Any, corpus_dir: Path, file_name: str, content_type: str
) -> None:
    body = (corpus_dir / file_name).read_bytes()
    decoded = _decode(body, content_type)
    member_id, application_token = _auth(decoded)
    portals_before = Portal.objects.count()

    if not (decoded is not None and member_id and application_token):
        response = _post(client, body, content_type)
        assert response.status_code < 500
        if decoded is not None and "event" in decoded:
            assert response.status_code == 403, response.content
            assert response.json()["error"] == "forbidden"
        else:
            assert response.status_code in (400, 415), response.content
            assert "error" in response.json()
        assert not Event.objects.exists()
        assert not Message.objects.exists()
        assert Portal.objects.count() == portals_before
        return

    assert decoded is not None
    name = str(decoded["event"]).strip().upper()
    data = decoded.get("data") if isinstance(decoded.get("data"), dict) else {}
    assert isinstance(data, dict)
    if name == ev.APP_INSTALL:
        settings.IMBOT_VERIFY_INSTALL = False
        assert not Portal.objects.filter(member_id=member_id).exists()
    else:
        EventFactory(member_id=member_id, application_token=application_token).install_portal()

    response = _post(client, body, content_type)

    assert response.status_code < 500
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "accepted"
    record = Event.objects.get()
    assert record.pk == answer["event_id"]
    assert record.name == name
    assert record.status == Event.Status.RECEIVED
    portal = Portal.objects.get(member_id=member_id)
    assert record.portal == portal
    _assert_redacted(record.payload, decoded, member_id)

    if name == ev.APP_INSTALL:
        assert portal.status == Portal.Status.INSTALLED
        assert token_matches(portal.application_token, application_token)
    elif name == ev.APP_UNINSTALL:
        assert portal.status == Portal.Status.UNINSTALLED
    else:
        assert portal.status == Portal.Status.INSTALLED

    if content_type == FORM:
        _assert_form_message(body, decoded)
    if name in MESSAGE_EVENTS:
        _assert_message_rows(portal, name, data)
    elif name == ev.COMMAND_ADD:
        _assert_invocations(record, data)
        _assert_message_rows(portal, name, data)
    elif name == ev.BOT_JOIN_CHAT:
        _assert_chat(portal, data["PARAMS"])
    elif name == ev.BOT_DELETE:
        bot = Bot.objects.get(portal=portal, bot_id=int(data["BOT_ID"]))
        assert bot.deleted_at is not None
    elif name not in KNOWN_EVENTS:
        # A generic event: kept whole, nothing else derived from it.
        assert set(record.payload) == set(decoded)
        assert set(record.payload.get("data") or {}) == set(data)
        assert not Message.objects.exists()
        assert not Chat.objects.exists()
