"""Install, update, bot deletion and uninstall through the endpoint, as Bitrix24 sends them."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from imbot_app import on_event
from imbot_app.dispatch.context import AppContext
from imbot_app.models import (
    Bot,
    Chat,
    ChatUser,
    Command,
    CommandInvocation,
    Credential,
    Event,
    HandlerRun,
    Message,
    Portal,
)
from imbot_app.testing import EventFactory, FakeBitrix24, post_event
from tests.registration_kit import HANDLER_URL, configure, echo, rest_calls

pytestmark = pytest.mark.django_db

REGISTER = "imbot_app.lifecycle.handlers.register_declared_bots"
RESYNC = "imbot_app.lifecycle.handlers.resync_declared_bots"
CLEAN = "imbot_app.lifecycle.handlers.clean_portal_data"


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24, isolated_routes: Any) -> FakeBitrix24:
    """Registration on and install verification on, both against the fake."""
    configure(settings, fake_b24)
    settings.IMBOT_VERIFY_INSTALL = True
    return fake_b24


@pytest.fixture
def events(fake: FakeBitrix24) -> EventFactory:
    """A portal that is not installed yet and lives on the fake."""
    return EventFactory(
        server_endpoint=fake.rest_url, client_id=fake.client_id, fake=fake, bot_code="legacy"
    )


def installed(deliver: Any, events: EventFactory) -> Portal:
    deliver(events.install())
    return Portal.objects.get(member_id=events.member_id)


def runs(name: str) -> list[tuple[str, str]]:
    return list(
        HandlerRun.objects.filter(event__name=name).values_list("handler", "status").order_by("id")
    )


# --------------------------------------------------------------------------- install


def test_a_verified_install_registers_the_declared_bots(fake, events, deliver) -> None:
    payload = events.install()
    response = deliver(payload)

    portal = Portal.objects.get(member_id=events.member_id)
    assert rest_calls(fake)[:4] == [
        "imbot.register",
        "imbot.update",
        "imbot.command.register",
        "imbot.command.register",
    ]
    # With the installer's tokens from the install event, at the endpoint app.info named.
    assert fake.calls_to("imbot.register")[0].token == payload["auth"]["access_token"]
    assert portal.client_endpoint == fake.rest_url
    bot = Bot.objects.get(portal=portal, code="echobot")
    assert bot.bot_id in fake.bots(events.member_id)
    assert set(
        Command.objects.filter(portal=portal, deleted_at=None).values_list("command", flat=True)
    ) == {"echo", "help"}
    assert portal.registered_at is not None and portal.registration_error == ""
    assert portal.bound_events == {
        "ONAPPINSTALL": HANDLER_URL,
        "ONAPPUPDATE": HANDLER_URL,
        "ONAPPUNINSTALL": HANDLER_URL,
    }
    event = Event.objects.get(pk=response.json()["event_id"])
    assert (event.status, event.error) == ("processed", "")
    assert runs("ONAPPINSTALL") == [(REGISTER, "succeeded")]


def test_registration_runs_after_the_commit_not_inside_the_webhook(
    fake, events, client, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_event(client, events.install())
    assert response.json()["status"] == "accepted"
    assert rest_calls(fake) == []  # the webhook answered without calling Bitrix24

    for callback in callbacks:
        callback()

    assert fake.calls_to("imbot.register")


def test_a_failed_registration_is_recorded_and_keeps_the_installation(
    fake, events, deliver
) -> None:
    fake.fail_method("imbot.register", error="MAX_COUNT_ERROR", description="Too many bots")

    response = deliver(events.install())

    assert response.json()["status"] == "accepted"
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.status == "failed"
    assert REGISTER in event.error
    assert "RegistrationFailed" in event.error
    assert "imbot.register: MAX_COUNT_ERROR (Too many bots)" in event.error
    portal = Portal.objects.get(member_id=events.member_id)
    assert portal.status == Portal.Status.INSTALLED
    assert Credential.objects.filter(portal=portal, user_id=events.user_id).exists()
    assert "MAX_COUNT_ERROR" in portal.registration_error
    assert portal.registered_at is None
    assert runs("ONAPPINSTALL") == [(REGISTER, "failed")]


def test_a_missing_public_url_waits_with_one_warning_line_and_no_traceback(
    settings, fake, events, deliver, caplog
) -> None:
    settings.IMBOT_PUBLIC_URL = ""
    with caplog.at_level(logging.INFO, logger="imbot_app"):
        response = deliver(events.install())
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.status == "processed"  # not a red failure on the admin's first screen
    portal = Portal.objects.get(member_id=events.member_id)
    assert portal.registration_error.startswith("waiting for IMBOT_PUBLIC_URL: ")
    assert "IMBOT_PUBLIC_URL is not set" in portal.registration_error
    assert "manage.py imbot_register" in portal.registration_error
    assert rest_calls(fake) == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "IMBOT_PUBLIC_URL is not set" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("change", ["setting_off", "nothing_declared"])
def test_no_registration_leaves_no_handler_run(settings, fake, events, deliver, change) -> None:
    if change == "setting_off":
        settings.IMBOT_REGISTER_ON_INSTALL = False
    else:
        settings.IMBOT_BOTS = []
    response = deliver(events.install())
    assert rest_calls(fake) == []
    assert not HandlerRun.objects.exists()
    assert Event.objects.get(pk=response.json()["event_id"]).status == "processed"


def test_the_projects_install_handlers_run_after_the_bots_exist(fake, events, deliver) -> None:
    seen: list[int] = []

    @on_event("ONAPPINSTALL")
    def count_bots(app: AppContext) -> None:
        seen.append(Bot.objects.filter(portal=app.portal, deleted_at=None).count())

    deliver(events.install())

    assert seen == [1]
    assert [handler for handler, _ in runs("ONAPPINSTALL")] == [
        REGISTER,
        "tests.test_lifecycle.test_the_projects_install_handlers_run_after_the_bots_exist"
        ".<locals>.count_bots",
    ]


# --------------------------------------------------------------------------- update, delete


def test_an_update_syncs_the_declarations_again(settings, fake, events, deliver) -> None:
    portal = installed(deliver, events)
    bot = Bot.objects.get(portal=portal, code="echobot")
    settings.IMBOT_BOTS = [echo(name="Parrot")]
    before = len(fake.calls)

    deliver(events.update("2"))

    calls = fake.calls[before:]
    assert [c.method for c in calls] == ["imbot.update", "event.bind", "event.bind", "event.bind"]
    assert calls[0].params["BOT_ID"] == bot.bot_id
    assert calls[0].params["FIELDS"]["PROPERTIES"]["NAME"] == "Parrot"
    assert runs("ONAPPUPDATE") == [(RESYNC, "succeeded")]
    assert fake.bindings(events.member_id).count(("ONAPPUPDATE", HANDLER_URL)) == 1


def test_a_deleted_bot_is_registered_again_by_the_next_sync(fake, events, deliver) -> None:
    portal = installed(deliver, events)
    bot = Bot.objects.get(portal=portal, code="echobot")
    events.bot_id, events.bot_code = bot.bot_id, "echobot"

    deliver(events.bot_delete())
    bot.refresh_from_db()
    assert bot.deleted_at is not None
    registered = len(fake.calls_to("imbot.register"))

    deliver(events.update("2"))

    assert len(fake.calls_to("imbot.register")) == registered + 1
    assert Bot.objects.get(portal=portal, code="echobot", deleted_at=None).registered_at


# --------------------------------------------------------------------------- uninstall


def test_uninstall_forgets_the_registrations_and_a_reinstall_makes_them_again(
    fake, events, deliver
) -> None:
    portal = installed(deliver, events)

    deliver(events.uninstall())

    portal.refresh_from_db()
    assert portal.status == Portal.Status.UNINSTALLED
    assert portal.registered_at is None and portal.bound_events == {}
    assert not Bot.objects.filter(portal=portal, deleted_at=None).exists()
    assert not Command.objects.filter(portal=portal, deleted_at=None).exists()
    registered = len(fake.calls_to("imbot.register"))

    # (A later second: the same install payload in the same second would be a duplicate.)
    response = deliver(events.install(ts=str(int(time.time()) + 5)))

    assert response.json()["status"] == "accepted"
    portal.refresh_from_db()
    assert len(fake.calls_to("imbot.register")) == registered + 1
    assert portal.registered_at is not None and portal.registration_error == ""
    assert Bot.objects.filter(portal=portal, deleted_at=None).count() == 1
    assert Command.objects.filter(portal=portal, deleted_at=None).count() == 2


def talk(factory: EventFactory, deliver: Any) -> None:
    """A private message and a command in a group chat: messages, people, an invocation."""
    deliver(factory.message("my secret plans"))
    deliver(factory.command("echo", "more secrets", chat_id=42))


def test_a_clean_uninstall_deletes_the_portals_data_and_scrubs_its_events(
    factory, deliver, isolated_routes
) -> None:
    talk(factory, deliver)
    other = EventFactory.installed()
    talk(other, deliver)
    chats = Chat.objects.filter(portal__member_id=factory.member_id).count()
    events_before = Event.objects.count()

    deliver(factory.uninstall(clean=True))

    portal = Portal.objects.get(member_id=factory.member_id)
    assert not Message.objects.filter(portal=portal).exists()
    assert not ChatUser.objects.filter(portal=portal).exists()
    assert not CommandInvocation.objects.filter(command__portal=portal).exists()
    # Events stay (one more: the uninstall), without what people wrote.
    assert Event.objects.count() == events_before + 1
    payloads = json.dumps(
        list(Event.objects.filter(portal=portal).values_list("payload", flat=True))
    )
    assert "secret" not in payloads and factory.user_name not in payloads
    message_event = Event.objects.get(portal=portal, name="ONIMBOTMESSAGEADD")
    assert message_event.payload["data"] == "[redacted]"
    assert message_event.payload["event"] == "ONIMBOTMESSAGEADD"
    uninstall = Event.objects.get(portal=portal, name="ONAPPUNINSTALL")
    assert uninstall.payload["data"]["CLEAN"] == "1"
    assert Chat.objects.filter(portal=portal).count() == chats
    assert runs("ONAPPUNINSTALL") == [(CLEAN, "succeeded")]
    # Another portal's data is untouched.
    assert Message.objects.filter(portal__member_id=other.member_id).count() == 2
    assert CommandInvocation.objects.filter(command__portal__member_id=other.member_id).exists()


@pytest.mark.parametrize(("clean", "honor"), [(False, True), (True, False)])
def test_data_stays_without_clean_or_when_clean_is_not_honoured(
    settings, factory, deliver, isolated_routes, clean, honor
) -> None:
    settings.IMBOT_HONOR_CLEAN = honor
    talk(factory, deliver)

    deliver(factory.uninstall(clean=clean))

    assert Message.objects.count() == 2
    assert ChatUser.objects.exists()
    assert CommandInvocation.objects.exists()
    assert not HandlerRun.objects.filter(event__name="ONAPPUNINSTALL").exists()
