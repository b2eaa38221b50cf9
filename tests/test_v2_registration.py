"""Registering Chatbots 2.0 bots on the fake: plan, apply, idempotency, updates, unregister,
inbound-webhook portals (botToken), errors explained, and v1 and v2 bots side by side."""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from imbot_app.lifecycle.plans import Status, plan_sync
from imbot_app.lifecycle.registration import sync_portal, unregister_portal
from imbot_app.models import Bot, Command, Portal
from imbot_app.testing import FakeBitrix24

from .registration_kit import HANDLER_URL, configure, echo, portal_on, rest_calls

pytestmark = pytest.mark.django_db

V2 = "imbot.v2."


def helper(**changes: Any) -> dict[str, Any]:
    """The echo bot's declaration as a Chatbots 2.0 bot, under its own code."""
    return echo(**{"code": "helper", "name": "Helper", "api": "v2", **changes})


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    configure(settings, fake_b24, helper())
    return fake_b24


@pytest.fixture
def portal(fake: FakeBitrix24) -> Portal:
    return portal_on(fake)[1]


def live(portal: Portal, code: str = "helper") -> Bot:
    return Bot.objects.get(portal=portal, code=code, deleted_at__isnull=True)


def test_a_dry_run_plans_the_v2_methods(fake, portal) -> None:
    plan = sync_portal(portal, dry_run=True)

    assert plan.ok, plan.error
    assert [a.methods for a in plan.actions[:2]] == [
        (V2 + "Bot.register", V2 + "Bot.update"),
        (V2 + "Command.register",),
    ]
    assert rest_calls(fake) == []
    assert not Bot.objects.filter(code="helper").exists()


def test_first_sync_registers_the_v2_bot_and_its_commands(fake, portal) -> None:
    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert rest_calls(fake) == [
        V2 + "Bot.register",
        V2 + "Bot.update",
        V2 + "Command.register",
        V2 + "Command.register",
        "event.bind",
        "event.bind",
        "event.bind",
    ]
    [register] = fake.calls_to(V2 + "Bot.register")
    assert register.params == {
        "fields": {
            "code": "helper",
            "properties": {"name": "Helper", "color": "GREEN"},
            "type": "bot",
            "eventMode": "fetch",
            "isSupportOpenline": False,
        }
    }
    bot = live(portal)
    assert (bot.api, bot.event_mode, bot.bot_token, bot.type) == ("v2", "fetch", "", "B")
    on_fake = fake.v2.bot(portal.member_id, bot.bot_id)
    assert on_fake is not None and on_fake["eventMode"] == "fetch" and on_fake["code"] == "helper"
    echo_call = fake.calls_to(V2 + "Command.register")[0]
    assert echo_call.params == {
        "botId": bot.bot_id,
        "fields": {
            "command": "echo",
            "title": {"en": "Repeat a text", "de": "Einen Text wiederholen"},
            "params": {"en": "text"},
            "common": True,
            "hidden": False,
            "extranetSupport": False,
        },
    }
    # The ids are read from v2's {"command": {"id": ...}} answers.
    commands = {c["command"]: cid for cid, c in fake.v2.commands(portal.member_id).items()}
    stored = dict(
        Command.objects.filter(portal=portal, deleted_at__isnull=True).values_list(
            "command", "command_id"
        )
    )
    assert stored == {"echo": commands["/echo"], "help": commands["/help"]}
    assert [a.status for a in plan.actions] == [Status.DONE] * 6


def test_a_second_sync_sends_nothing(fake, portal) -> None:
    sync_portal(portal)
    before = len(rest_calls(fake))

    plan = sync_portal(portal)

    assert plan.ok and plan.actions == []
    assert len(rest_calls(fake)) == before
    assert ("helper", "") in plan.unchanged and ("helper", "/echo") in plan.unchanged


def test_changes_are_sent_with_bot_update_and_command_update(settings, fake, portal) -> None:
    sync_portal(portal)
    bot = live(portal)
    echo_id = Command.objects.get(portal=portal, command="echo").command_id
    commands = [
        {"command": "echo", "title": "Say it again", "common": False},
        {"command": "new", "title": "Something new"},
    ]
    settings.IMBOT_BOTS = [helper(name="Helper Two", event_mode="webhook", commands=commands)]
    fake.calls.clear()

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert rest_calls(fake) == [
        V2 + "Bot.update",
        V2 + "Command.update",  # v2 changes COMMON in place: no unregister + register
        V2 + "Command.register",
        V2 + "Command.unregister",
    ]
    [update] = fake.calls_to(V2 + "Bot.update")
    assert update.params["fields"]["properties"]["name"] == "Helper Two"
    assert update.params["fields"]["eventMode"] == "webhook"
    assert update.params["fields"]["webhookUrl"] == HANDLER_URL
    assert fake.v2.commands(portal.member_id)[echo_id]["common"] is False
    assert fake.v2.bot(portal.member_id, bot.bot_id)["eventMode"] == "webhook"
    assert sync_portal(portal).actions == []


def test_a_webhook_mode_bot_is_registered_with_the_events_url(settings, fake, portal) -> None:
    settings.IMBOT_BOTS = [helper(event_mode="webhook")]

    assert sync_portal(portal).ok

    [register] = fake.calls_to(V2 + "Bot.register")
    assert register.params["fields"]["eventMode"] == "webhook"
    assert register.params["fields"]["webhookUrl"] == HANDLER_URL
    assert live(portal).event_mode == "webhook"


def test_unregister_uses_bot_unregister(fake, portal) -> None:
    sync_portal(portal)
    bot = live(portal)
    fake.calls.clear()

    plan = unregister_portal(portal, codes=["helper"])

    assert plan.ok, plan.error
    assert plan.actions[0].methods == (V2 + "Bot.unregister",)
    assert rest_calls(fake) == [V2 + "Bot.unregister"]
    assert fake.v2.bot(portal.member_id, bot.bot_id) is None
    bot.refresh_from_db()
    assert bot.deleted_at is not None
    assert not Command.objects.filter(bot=bot, deleted_at__isnull=True).exists()
    # Gone already: the next unregister finds nothing to do; a new sync registers a new bot.
    assert sync_portal(portal).ok
    assert live(portal).bot_id != bot.bot_id


def test_a_bot_that_vanished_is_registered_again(fake, portal) -> None:
    sync_portal(portal)
    bot = live(portal)
    with fake._lock:  # unregistered behind the app's back
        del fake.v2._bots[(portal.member_id, bot.bot_id)]
    Bot.objects.filter(pk=bot.pk).update(spec_hash="changed")

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert Status.STALE in [a.status for a in plan.actions]
    assert live(portal).bot_id != bot.bot_id


def test_a_code_taken_by_another_owner_is_explained(fake, portal) -> None:
    fake.v2.add_bot(portal.member_id, "helper", client_id="another-application")

    plan = sync_portal(portal)

    assert "BOT_CODE_ALREADY_TAKEN: another owner" in plan.error
    assert "pick another code" in plan.error
    portal.refresh_from_db()
    assert "BOT_CODE_ALREADY_TAKEN: another owner" in portal.registration_error
    assert plan.actions[0].status == Status.FAILED
    assert {a.status for a in plan.actions[1:]} == {Status.SKIPPED}


def test_v1_and_v2_bots_on_one_portal(settings, fake, portal) -> None:
    settings.IMBOT_BOTS = [echo(), helper()]

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    calls = rest_calls(fake)
    assert calls[:4] == [
        "imbot.register",
        "imbot.update",
        "imbot.command.register",
        "imbot.command.register",
    ]
    assert calls[4:8] == [
        V2 + "Bot.register",
        V2 + "Bot.update",
        V2 + "Command.register",
        V2 + "Command.register",
    ]
    assert (live(portal, "echobot").api, live(portal, "helper").api) == ("v1", "v2")
    assert sync_portal(portal).actions == []


def test_declaring_a_v1_bot_as_v2_is_reported_not_attempted(settings, fake, portal) -> None:
    settings.IMBOT_BOTS = [echo()]
    sync_portal(portal)
    settings.IMBOT_BOTS = [echo(api="v2")]
    fake.calls.clear()

    plan = plan_sync(portal)

    assert [a for a in plan.actions if a.bot == "echobot"] == []
    [note] = [n for n in plan.notes if "echobot" in n]
    assert "registered with API v1 but declared with api='v2'" in note
    assert "a Chatbots 2.0 registration is a new bot" in note
    assert sync_portal(portal).ok
    assert [c for c in rest_calls(fake) if c.startswith(V2)] == []


# --------------------------------------------------------------------------- inbound webhook


@pytest.fixture
def webhook_portal(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    url = fake_b24.add_webhook("f" * 32, user_id=1, domain="127.0.0.1")
    settings.IMBOT_WEBHOOK_URL = url
    settings.IMBOT_WEBHOOK_CLIENT_ID = "c" * 32
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    settings.IMBOT_BOTS = [helper()]
    return fake_b24


def test_a_webhook_portal_registers_with_a_sealed_bot_token(webhook_portal, caplog) -> None:
    fake = webhook_portal
    caplog.set_level(logging.DEBUG)
    out = StringIO()
    call_command("imbot_register", stdout=out)

    portal = Portal.objects.get()
    assert portal.webhook
    bot = live(portal)
    token = bot.bot_token
    assert len(token) == 40
    [register] = fake.calls_to(V2 + "Bot.register")
    assert register.webhook is True
    assert register.params["fields"]["botToken"] == token
    assert "CLIENT_ID" not in register.params  # v1's webhook proof; v2 names the bot's token
    for call in fake.calls_to(V2 + "Bot.update") + fake.calls_to(V2 + "Command.register"):
        assert call.params["botToken"] == token
    # (The portal's member_id is a placeholder until its first event: the fake's is "f" * 32.)
    assert fake.v2.bot("f" * 32, bot.bot_id)["token"] == token
    # Sealed in the database, in no log line and not in the command's output.
    with connection.cursor() as cursor:
        cursor.execute("SELECT bot_token FROM imbot_app_bot WHERE id = %s", [bot.pk])
        (raw,) = cursor.fetchone()
    assert token not in raw
    assert token not in caplog.text and token not in out.getvalue()

    # Unregistered and registered again: the same token, or Bitrix24 says the code is taken.
    call_command("imbot_unregister", "--bot", "helper", "--noinput", stdout=StringIO())
    call_command("imbot_register", stdout=StringIO())
    again = live(portal)
    assert again.bot_token == token and again.bot_id != bot.bot_id
    assert len(fake.calls_to(V2 + "Bot.unregister")) == 1
    _, second = fake.calls_to(V2 + "Bot.register")
    assert second.params["fields"]["botToken"] == token


def test_fetch_mode_bots_register_without_a_public_url(settings, fake, portal) -> None:
    settings.IMBOT_PUBLIC_URL = ""

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert rest_calls(fake)[:2] == [V2 + "Bot.register", V2 + "Bot.update"]
    assert "event.bind" not in rest_calls(fake)
    assert any("application events are not bound" in note for note in plan.notes)
    assert live(portal).event_mode == "fetch"


def test_a_webhook_mode_or_v1_bot_still_needs_the_public_url(settings, fake, portal) -> None:
    settings.IMBOT_PUBLIC_URL = ""
    for bots in ([helper(event_mode="webhook")], [helper(), echo()]):
        settings.IMBOT_BOTS = bots
        with pytest.raises(ImproperlyConfigured, match="IMBOT_PUBLIC_URL is not set"):
            sync_portal(portal)
    assert rest_calls(fake) == []
