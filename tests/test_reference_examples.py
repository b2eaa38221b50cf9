"""The examples on Bitrix24's own reference pages, posted the way Bitrix24 posts them.

The pages live in ../shared/reference; the examples are the JSON blocks on them (a private
and a group chat on each page).  Each is sent form-encoded (PHP ``http_build_query``, as the
queue server does) and as JSON, and what is stored is checked field by field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imbot_app.inbound.store import REDACTED
from imbot_app.models import Chat, ChatUser, CommandInvocation, Credential, Event, Message
from imbot_app.testing import EventFactory, post_event

REFERENCE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
PAGES = {"ONIMCOMMANDADD": "ONIMCOMMANDADD.en.txt", "ONIMBOTMESSAGEADD": "ONIMBOTMESSAGEADD.ru.md"}


def _examples(page: str) -> list[dict[str, Any]]:
    text = (REFERENCE_DIR / page).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found, i = [], 0
    while (start := text.find("{", i)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            i = start + 1
            continue
        if isinstance(value, dict) and "event" in value:
            found.append(value)
        i = end
    return found


def _cases() -> list[Any]:
    if not REFERENCE_DIR.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no ../shared/reference"))]
    cases = []
    for name, page in PAGES.items():
        for example in _examples(page):
            kind = "private" if example["data"]["PARAMS"]["CHAT_TYPE"] == "P" else "group"
            for as_json in (False, True):
                wire = "json" if as_json else "form"
                cases.append(pytest.param(example, as_json, id=f"{name}-{kind}-{wire}"))
    return cases


def test_each_page_has_a_private_and_a_group_example() -> None:
    if not REFERENCE_DIR.is_dir():
        pytest.skip("no ../shared/reference")
    for page in PAGES.values():
        types = sorted(e["data"]["PARAMS"]["CHAT_TYPE"] for e in _examples(page))
        assert types == ["C", "P"], page


@pytest.mark.django_db
@pytest.mark.parametrize(("example", "as_json"), _cases())
def test_reference_example_is_stored_as_sent(client: Any, example: Any, as_json: bool) -> None:
    auth = example["auth"]
    EventFactory(
        member_id=auth["member_id"], application_token=auth["application_token"]
    ).install_portal()

    response = post_event(client, example, as_json=as_json)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.name == example["event"]
    assert event.handler_id == int(example["event_handler_id"])
    assert event.ts is not None
    assert int(event.ts.timestamp()) == int(example["ts"])

    params = example["data"]["PARAMS"]
    message = Message.objects.select_related("chat", "author", "bot").get(
        message_id=int(params["MESSAGE_ID"])
    )
    assert message.direction == "in"
    assert message.text == params["MESSAGE"]
    assert message.text_original == params.get("MESSAGE_ORIGINAL", params["MESSAGE"])
    assert message.event_id == event.pk

    chat = message.chat
    assert chat.dialog_id == params["DIALOG_ID"]
    assert chat.type == params["CHAT_TYPE"]
    if params["CHAT_TYPE"] == "C":
        assert chat.chat_id == int(params["CHAT_ID"])
        assert chat.title == params["CHAT_TITLE"]
        assert chat.entity_type == params["CHAT_ENTITY_TYPE"]
        assert chat.bot is None
    else:
        assert chat.bot is not None

    user = example["data"]["USER"]
    author = ChatUser.objects.get(user_id=int(user["ID"]))
    assert message.author == author
    assert author.name == user["NAME"]
    assert author.first_name == user["FIRST_NAME"]
    assert author.last_name == user["LAST_NAME"]

    # Every token set the event carries is kept: the user's and the bot's.
    blocks = example["data"].get("BOT") or example["data"].get("COMMAND")
    entry = next(iter(blocks.values()))
    bot_credential = Credential.objects.get(user_id=int(entry["user_id"]))
    assert bot_credential.access_token == entry["access_token"]
    assert bot_credential.refresh_token == entry["refresh_token"]
    assert bot_credential.expires_at is not None
    assert int(bot_credential.expires_at.timestamp()) == int(entry["expires"])
    user_credential = Credential.objects.get(user_id=int(auth["user_id"]))
    assert user_credential.access_token == auth["access_token"]
    assert message.bot is not None
    assert message.bot.bot_id == int(entry["BOT_ID"])
    assert message.bot.code == entry["BOT_CODE"]

    # ...and none of them is in the stored payload.
    stored = json.dumps(event.payload)
    for secret in (auth["access_token"], auth["refresh_token"], auth["application_token"]):
        assert secret not in stored
    assert event.payload["auth"]["access_token"] == REDACTED

    if example["event"] == "ONIMCOMMANDADD":
        invocation = CommandInvocation.objects.select_related("command").get()
        assert invocation.event_id == event.pk
        assert invocation.command.command == entry["COMMAND"]
        assert invocation.command.command_id == int(entry["COMMAND_ID"])
        assert invocation.params == entry["COMMAND_PARAMS"]
        assert invocation.context == entry["COMMAND_CONTEXT"]
        assert invocation.message_id == int(entry["MESSAGE_ID"])
        assert invocation.chat == chat
        assert invocation.user == author
    else:
        assert Chat.objects.count() == 1
        assert not CommandInvocation.objects.exists()
