"""Registering the declared bots on a portal, against the fake Bitrix24: plan, apply, record."""

from __future__ import annotations

from typing import Any

import pytest

from imbot_app.lifecycle.plans import Status, Step, plan_sync
from imbot_app.lifecycle.registration import sync_portal, unregister_portal
from imbot_app.models import Bot, Command, Credential, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.testing import FakeBitrix24, post_event
from tests.registration_kit import (
    APP_EVENTS,
    HANDLER_URL,
    configure,
    echo,
    portal_on,
    rest_calls,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    configure(settings, fake_b24)
    return fake_b24


@pytest.fixture
def portal(fake: FakeBitrix24) -> Portal:
    return portal_on(fake)[1]


def steps(plan: Any) -> list[tuple[str, str, str]]:
    return [(str(a.step), a.bot, a.target) for a in plan.actions]


def live_bot(portal: Portal, code: str = "echobot") -> Bot:
    return Bot.objects.get(portal=portal, code=code, deleted_at__isnull=True)


def live_commands(portal: Portal) -> dict[str, int]:
    return dict(
        Command.objects.filter(portal=portal, deleted_at__isnull=True).values_list(
            "command", "command_id"
        )
    )


# --------------------------------------------------------------------------- first sync


def test_first_sync_registers_the_bot_its_commands_and_binds_the_app_events(fake, portal):
    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert rest_calls(fake) == [
        "imbot.register",
        "imbot.update",
        "imbot.command.register",
        "imbot.command.register",
        "event.bind",
        "event.bind",
        "event.bind",
    ]
    [register] = fake.calls_to("imbot.register")
    assert register.params == {
        "CODE": "echobot",
        "TYPE": "B",
        "OPENLINE": "N",
        "EVENT_MESSAGE_ADD": HANDLER_URL,
        "EVENT_WELCOME_MESSAGE": HANDLER_URL,
        "EVENT_BOT_DELETE": HANDLER_URL,
        "PROPERTIES": {"NAME": "Echo bot", "COLOR": "GREEN"},
    }
    # With the installer's token.
    installer = Credential.objects.get(portal=portal, user_id=portal.installer_user_id)
    assert register.token == installer.access_token
    bot = live_bot(portal)
    # A plain bot gets its edit handlers afterwards: imbot.register ignores them for it.
    [update] = fake.calls_to("imbot.update")
    assert update.params["BOT_ID"] == bot.bot_id
    assert update.params["FIELDS"]["EVENT_MESSAGE_UPDATE"] == HANDLER_URL
    assert update.params["FIELDS"]["EVENT_MESSAGE_DELETE"] == HANDLER_URL
    assert fake.bots(portal.member_id)[bot.bot_id]["EVENT_MESSAGE_UPDATE"] == HANDLER_URL

    echo_call, help_call = fake.calls_to("imbot.command.register")
    assert echo_call.params == {
        "BOT_ID": bot.bot_id,
        "COMMAND": "echo",
        "COMMON": "Y",
        "HIDDEN": "N",
        "EXTRANET_SUPPORT": "N",
        "EVENT_COMMAND_ADD": HANDLER_URL,
        "LANG": [
            {"LANGUAGE_ID": "en", "TITLE": "Repeat a text", "PARAMS": "text"},
            {"LANGUAGE_ID": "de", "TITLE": "Einen Text wiederholen"},
        ],
    }
    assert help_call.params["LANG"] == [{"LANGUAGE_ID": "en", "TITLE": "What I can do"}]
    assert help_call.params["COMMON"] == "N"

    # The ids Bitrix24 answered are stored.
    assert (bot.code, bot.name, bot.type, bot.openline) == ("echobot", "Echo bot", "B", False)
    assert bot.bot_id in fake.bots(portal.member_id)
    assert bot.spec_hash and bot.registered_at is not None
    on_fake = {c["COMMAND"]: cid for cid, c in fake.commands(portal.member_id).items()}
    assert live_commands(portal) == {"echo": on_fake["echo"], "help": on_fake["help"]}
    echo_row = Command.objects.get(portal=portal, command="echo")
    assert (echo_row.bot_id, echo_row.title, echo_row.common) == (bot.pk, "Repeat a text", True)

    assert fake.bindings(portal.member_id) == [(event, HANDLER_URL) for event in APP_EVENTS]
    portal.refresh_from_db()
    assert portal.bound_events == dict.fromkeys(APP_EVENTS, HANDLER_URL)
    assert portal.registered_at is not None
    assert portal.registration_error == ""
    assert [a.status for a in plan.actions] == [Status.DONE] * 6


def test_second_sync_sends_nothing(fake, portal) -> None:
    sync_portal(portal)
    before = len(fake.calls)

    plan = sync_portal(portal)

    assert plan.ok and plan.actions == []
    assert len(fake.calls) == before
    assert plan.unchanged == [
        ("echobot", ""),
        ("echobot", "/echo"),
        ("echobot", "/help"),
        *[("", event) for event in APP_EVENTS],
    ]
    assert Bot.objects.count() == 1
    assert Command.objects.count() == 2


@pytest.mark.parametrize(
    ("declared", "openline"),
    [({"type": "S"}, "N"), ({"type": "O"}, "Y"), ({"openline": True}, "Y")],
)
def test_open_line_and_supervisor_bots_get_edit_handlers_at_registration(
    settings, fake, portal, declared, openline
) -> None:
    settings.IMBOT_BOTS = [echo(**declared)]
    sync_portal(portal)
    [register] = fake.calls_to("imbot.register")
    assert register.params["EVENT_MESSAGE_UPDATE"] == HANDLER_URL
    assert register.params["EVENT_MESSAGE_DELETE"] == HANDLER_URL
    assert register.params["OPENLINE"] == openline


def test_a_bot_without_message_edits_binds_no_edit_handlers(settings, fake, portal) -> None:
    settings.IMBOT_BOTS = [echo(message_edits=False)]
    sync_portal(portal)
    [update] = fake.calls_to("imbot.update")
    assert "EVENT_MESSAGE_UPDATE" not in update.params["FIELDS"]


# --------------------------------------------------------------------------- changes


def test_changed_commands_are_updated_new_ones_registered_removed_ones_unregistered(
    settings, fake, portal
) -> None:
    sync_portal(portal)
    old = live_commands(portal)
    settings.IMBOT_BOTS = [
        echo(
            commands=[
                {"command": "echo", "title": "Say it again", "common": True, "hidden": True},
                {"command": "ping", "title": "Are you there?"},
            ]
        )
    ]

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert steps(plan) == [
        ("update command", "echobot", "/echo"),
        ("register command", "echobot", "/ping"),
        ("unregister command", "echobot", "/help"),
    ]
    [update] = fake.calls_to("imbot.command.update")
    assert update.params["COMMAND_ID"] == old["echo"]
    assert update.params["FIELDS"] == {
        "COMMAND": "echo",
        "EVENT_COMMAND_ADD": HANDLER_URL,
        "HIDDEN": "Y",
        "EXTRANET_SUPPORT": "N",
        "LANG": [{"LANGUAGE_ID": "en", "TITLE": "Say it again"}],
    }
    [unregister] = fake.calls_to("imbot.command.unregister")
    assert unregister.params == {"COMMAND_ID": old["help"]}
    on_fake = {c["COMMAND"]: c for c in fake.commands(portal.member_id).values()}
    assert set(on_fake) == {"echo", "ping"}
    assert on_fake["echo"]["HIDDEN"] == "Y"
    assert live_commands(portal) == {"echo": old["echo"], "ping": on_fake["ping"]["ID"]}
    # The unregistered command's row stays (its invocations are history), marked deleted.
    assert Command.objects.get(command_id=old["help"]).deleted_at is not None
    assert sync_portal(portal).actions == []


def test_a_changed_common_flag_replaces_the_command(settings, fake, portal) -> None:
    sync_portal(portal)
    old_id = live_commands(portal)["echo"]
    bot = echo()
    bot["commands"][0]["common"] = False
    settings.IMBOT_BOTS = [bot]

    plan = sync_portal(portal)

    assert steps(plan) == [("replace command", "echobot", "/echo")]
    assert fake.calls_to("imbot.command.unregister")[0].params == {"COMMAND_ID": old_id}
    [register] = fake.calls_to("imbot.command.register")[-1:]
    assert register.params["COMMON"] == "N"
    new_id = live_commands(portal)["echo"]
    assert new_id != old_id
    assert plan.actions[0].outcome == f"COMMAND_ID {old_id} -> {new_id}"
    assert Command.objects.get(command_id=old_id).deleted_at is not None


def test_changed_bot_properties_update_the_bot(settings, fake, portal) -> None:
    sync_portal(portal)
    bot_id = live_bot(portal).bot_id
    settings.IMBOT_BOTS = [echo(name="Parrot", work_position="Repeats you")]

    plan = sync_portal(portal)

    assert steps(plan) == [("update bot", "echobot", "")]
    assert len(fake.calls_to("imbot.register")) == 1
    update = fake.calls_to("imbot.update")[-1]
    assert update.params["BOT_ID"] == bot_id
    assert update.params["FIELDS"]["PROPERTIES"] == {
        "NAME": "Parrot",
        "COLOR": "GREEN",
        "WORK_POSITION": "Repeats you",
    }
    assert fake.bots(portal.member_id)[bot_id]["PROPERTIES"]["NAME"] == "Parrot"
    assert live_bot(portal).name == "Parrot"


def test_a_new_public_url_sends_everything_again_and_moves_the_bindings(
    settings, fake, portal
) -> None:
    sync_portal(portal)
    settings.IMBOT_PUBLIC_URL = "https://new.example.com/"
    new_url = "https://new.example.com/imbot/events/"

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert [str(a.step) for a in plan.actions] == [
        "update bot",
        "update command",
        "update command",
        "bind event",
        "bind event",
        "bind event",
    ]
    assert {a.reason for a in plan.actions} == {
        "declaration or handler URL changed",
        "handler URL changed",
    }
    assert fake.calls_to("imbot.update")[-1].params["FIELDS"]["EVENT_MESSAGE_ADD"] == new_url
    assert len(fake.calls_to("event.unbind")) == 3
    assert fake.bindings(portal.member_id) == [(event, new_url) for event in APP_EVENTS]


def test_type_changes_are_reported_not_attempted(settings, fake, portal) -> None:
    sync_portal(portal)
    settings.IMBOT_BOTS = [echo(type="S")]
    plan = sync_portal(portal)
    assert plan.ok
    assert len(fake.calls_to("imbot.register")) == 1
    [note] = plan.notes
    assert "TYPE B" in note and "TYPE S" in note and "imbot_unregister --bot echobot" in note


def test_a_bot_no_longer_declared_is_kept_and_reported(settings, fake, portal) -> None:
    sync_portal(portal)
    settings.IMBOT_BOTS = [echo(code="otherbot")]
    plan = sync_portal(portal)
    assert ("register bot", "otherbot", "") in steps(plan)
    assert fake.calls_to("imbot.unregister") == []
    assert any("echobot" in note and "no longer declared" in note for note in plan.notes)
    assert live_bot(portal).code == "echobot"


def test_force_sends_everything_again(fake, portal) -> None:
    sync_portal(portal)
    plan = plan_sync(portal, force=True)
    assert [str(a.step) for a in plan.actions] == [
        "update bot",
        "update command",
        "update command",
        "bind event",
        "bind event",
        "bind event",
    ]
    assert {a.reason for a in plan.actions} == {"forced"}
    assert sync_portal(portal, force=True).ok
    assert fake.calls_to("event.bind")[-1].method == "event.bind"


# --------------------------------------------------------------------------- drift


def test_a_bot_deleted_on_the_portal_is_registered_again(client, fake) -> None:
    events, portal = portal_on(fake)
    sync_portal(portal)
    old = live_bot(portal)
    old_commands = live_commands(portal)
    # Someone deletes the bot in Bitrix24, which tells us with ONIMBOTDELETE.
    RestClient(portal).call("imbot.unregister", {"BOT_ID": old.bot_id})
    events.bot_id, events.bot_code = old.bot_id, "echobot"
    assert post_event(client, events.bot_delete()).status_code == 200

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert steps(plan)[:3] == [
        ("register bot", "echobot", ""),
        ("register command", "echobot", "/echo"),
        ("register command", "echobot", "/help"),
    ]
    assert plan.actions[0].reason == "deleted on the portal"
    new = live_bot(portal)
    assert new.bot_id != old.bot_id
    old.refresh_from_db()
    assert old.deleted_at is not None  # kept, with its history
    assert set(live_commands(portal).values()).isdisjoint(old_commands.values())
    assert not Command.objects.filter(command_id__in=old_commands.values(), deleted_at=None)


def test_a_bot_that_vanished_without_notice_is_registered_again(settings, fake, portal) -> None:
    sync_portal(portal)
    old = live_bot(portal)
    RestClient(portal).call("imbot.unregister", {"BOT_ID": old.bot_id})  # no event arrives
    settings.IMBOT_BOTS = [echo(name="Parrot")]

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert plan.actions[0].step == Step.UPDATE_BOT
    assert plan.actions[0].status == Status.STALE
    assert "BOT_ID_ERROR" in plan.actions[0].outcome
    assert steps(plan)[1:4] == [
        ("register bot", "echobot", ""),
        ("register command", "echobot", "/echo"),
        ("register command", "echobot", "/help"),
    ]
    new = live_bot(portal)
    assert new.bot_id != old.bot_id and new.name == "Parrot"
    assert fake.bots(portal.member_id)[new.bot_id]["PROPERTIES"]["NAME"] == "Parrot"


def test_a_command_that_vanished_is_registered_again(settings, fake, portal) -> None:
    sync_portal(portal)
    old_id = live_commands(portal)["help"]
    RestClient(portal).call("imbot.command.unregister", {"COMMAND_ID": old_id})
    bot = echo()
    bot["commands"][1]["title"] = "Help me"
    settings.IMBOT_BOTS = [bot]

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert [(str(a.step), a.status) for a in plan.actions] == [
        ("update command", Status.STALE),
        ("register command", Status.DONE),
    ]
    assert live_commands(portal)["help"] != old_id


def test_bots_bitrix24_already_has_are_adopted_not_registered_twice(client, settings, fake) -> None:
    # The portal's bot and its /echo are known from events (an earlier version of the app).
    events, portal = portal_on(fake, bot_code="echobot")
    fake.add_command(events.member_id, events.bot_id, "echo", 103)
    assert post_event(client, events.command("echo", "hi", command_id=103)).status_code == 200

    plan = sync_portal(portal)

    assert plan.ok, plan.error
    assert steps(plan)[:3] == [
        ("update bot", "echobot", ""),
        ("update command", "echobot", "/echo"),
        ("register command", "echobot", "/help"),
    ]
    assert plan.actions[0].reason == "not yet registered by imbot_app"
    assert fake.calls_to("imbot.register") == []
    assert fake.calls_to("imbot.command.update")[0].params["COMMAND_ID"] == 103
    bot = live_bot(portal)
    assert (bot.bot_id, bot.type, bot.name) == (events.bot_id, "B", "Echo bot")
    assert sync_portal(portal).actions == []


def test_an_event_binding_bitrix24_already_has_counts_as_bound(fake, portal) -> None:
    RestClient(portal).call("event.bind", {"event": "ONAPPUPDATE", "handler": HANDLER_URL})
    plan = sync_portal(portal)
    assert plan.ok, plan.error
    [update] = [a for a in plan.actions if a.target == "ONAPPUPDATE"]
    assert (update.status, update.outcome) == (Status.DONE, "was already bound")
    portal.refresh_from_db()
    assert portal.bound_events["ONAPPUPDATE"] == HANDLER_URL


# --------------------------------------------------------------------------- failures


def test_a_failing_call_stops_the_portal_is_recorded_and_the_next_run_finishes(
    fake, portal
) -> None:
    fake.fail_method("imbot.command.register")

    plan = sync_portal(portal)

    assert not plan.ok
    assert plan.error.startswith("register command echobot /echo: imbot.command.register")
    assert "INTERNAL_SERVER_ERROR" in plan.error
    assert [a.status for a in plan.actions] == [
        Status.DONE,
        Status.FAILED,
        *[Status.SKIPPED] * 4,
    ]
    portal.refresh_from_db()
    assert portal.registration_error == plan.error
    assert portal.registered_at is None
    assert live_bot(portal)  # what did succeed is stored
    assert rest_calls(fake) == ["imbot.register", "imbot.update", "imbot.command.register"]

    again = sync_portal(portal)

    assert again.ok, again.error
    assert steps(again)[:2] == [
        ("register command", "echobot", "/echo"),
        ("register command", "echobot", "/help"),
    ]
    assert len(fake.calls_to("imbot.register")) == 1
    portal.refresh_from_db()
    assert portal.registration_error == "" and portal.registered_at is not None


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("uninstalled", "is uninstalled: it must install the application again"),
        ("reauth", "needs re-authorisation"),
        ("no_tokens", "has no tokens of the user who installed the application"),
        ("no_installer", "has no tokens of the user who installed the application"),
    ],
)
def test_a_portal_that_cannot_be_called_gets_a_clear_error(fake, portal, problem, message):
    if problem == "uninstalled":
        portal.status = Portal.Status.UNINSTALLED
    elif problem == "reauth":
        portal.status = Portal.Status.REAUTH_REQUIRED
    elif problem == "no_tokens":
        Credential.objects.filter(portal=portal).delete()
    else:
        portal.installer_user_id = None
    portal.save()

    plan = sync_portal(portal)

    assert message in plan.error
    assert rest_calls(fake) == []
    portal.refresh_from_db()
    assert message in portal.registration_error


def test_a_refused_refresh_token_ends_in_a_reauthorisation_error(fake, portal) -> None:
    fake.expire()
    fake.revoke_refresh_tokens()
    plan = sync_portal(portal)
    assert "invalid_grant" in plan.error
    portal.refresh_from_db()
    assert portal.status == Portal.Status.REAUTH_REQUIRED
    assert "invalid_grant" in portal.registration_error


# --------------------------------------------------------------------------- dry run


def test_a_dry_run_calls_nothing_and_stores_nothing(fake, portal) -> None:
    plan = sync_portal(portal, dry_run=True)

    assert fake.calls == []
    assert not Bot.objects.exists() and not Command.objects.exists()
    portal.refresh_from_db()
    assert portal.registered_at is None and portal.bound_events == {}
    assert plan.rows()[:3] == [
        ("register bot", "echobot", "", "would call imbot.register, imbot.update"),
        ("register command", "echobot", "/echo", "would call imbot.command.register"),
        ("register command", "echobot", "/help", "would call imbot.command.register"),
    ]


def test_a_dry_run_reports_a_portal_problem_without_recording_it(fake, portal) -> None:
    portal.status = Portal.Status.REAUTH_REQUIRED
    portal.save()
    plan = sync_portal(portal, dry_run=True)
    assert "needs re-authorisation" in plan.error
    portal.refresh_from_db()
    assert portal.registration_error == ""


# --------------------------------------------------------------------------- unregister


def test_unregister_removes_the_bot_and_keeps_its_rows(fake, portal) -> None:
    sync_portal(portal)
    bot = live_bot(portal)

    plan = unregister_portal(portal, codes=["echobot", "nosuchbot"])

    assert plan.ok, plan.error
    assert steps(plan) == [("unregister bot", "echobot", f"#{bot.bot_id}")]
    assert plan.notes == ["no registered bot nosuchbot on this portal"]
    assert fake.calls_to("imbot.unregister")[0].params == {"BOT_ID": bot.bot_id}
    assert bot.bot_id not in fake.bots(portal.member_id)
    bot.refresh_from_db()
    assert bot.deleted_at is not None
    assert live_commands(portal) == {}
    # Registering again brings it back under a new id.
    again = sync_portal(portal)
    assert steps(again)[0] == ("register bot", "echobot", "")


def test_unregistering_a_bot_bitrix24_no_longer_has_just_marks_it(fake, portal) -> None:
    sync_portal(portal)
    bot = live_bot(portal)
    RestClient(portal).call("imbot.unregister", {"BOT_ID": bot.bot_id})
    plan = unregister_portal(portal)
    assert plan.ok
    assert plan.actions[0].outcome == f"BOT_ID {bot.bot_id} was already gone"
    bot.refresh_from_db()
    assert bot.deleted_at is not None


def test_a_dry_unregister_calls_nothing(fake, portal) -> None:
    sync_portal(portal)
    before = len(fake.calls)
    plan = unregister_portal(portal, dry_run=True)
    assert plan.rows()[0][3] == "would call imbot.unregister"
    assert len(fake.calls) == before
    assert live_bot(portal).deleted_at is None
