"""Routing decorators: filters, regex groups, fan-out, priority, stop, isolation."""

from __future__ import annotations

from typing import Any

import pytest

import imbot_app
from imbot_app import events as ev
from imbot_app import on_command, on_event, on_join, on_message, signals
from imbot_app.dispatch.context import CommandContext, JoinContext, MessageContext
from imbot_app.dispatch.event_run import live_receivers
from imbot_app.dispatch.routing import Route, Router, router
from imbot_app.models import ChatType, Event, HandlerRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_routes")]


def ran() -> list[HandlerRun]:
    return list(HandlerRun.objects.order_by("id"))


def test_the_package_exports_the_decorators() -> None:
    assert imbot_app.on_command == router.on_command
    assert {"on_command", "on_message", "on_join", "on_event"} <= set(imbot_app.__all__)


# --------------------------------------------------------------------------- on_command


def test_on_command_runs_for_its_command_only(factory, deliver) -> None:
    seen: list[tuple[str, str]] = []

    @on_command("echo")
    def echo(command: CommandContext) -> None:
        seen.append((command.name, command.params))

    deliver(factory.command("echo", "one"))
    deliver(factory.command("help", "", command_id=104))
    deliver(factory.command("ECHO", "two"))

    assert seen == [("echo", "one"), ("ECHO", "two")]
    assert [r.handler for r in ran()] == [
        "tests.test_routing.test_on_command_runs_for_its_command_only.<locals>.echo"
    ] * 2


def test_on_command_accepts_a_slash_and_aliases(factory, deliver) -> None:
    seen: list[str] = []

    @on_command("/list", "ls")
    def listing(command: CommandContext) -> None:
        seen.append(command.name)

    deliver(factory.command("ls", ""))
    deliver(factory.command("list", "", command_id=105))
    assert seen == ["ls", "list"]


def test_on_command_needs_a_name() -> None:
    with pytest.raises(ValueError, match="command name"):
        on_command()


# --------------------------------------------------------------------------- on_message


def test_on_message_named_groups_become_keyword_arguments(factory, deliver) -> None:
    seen: list[tuple[str, str]] = []

    @on_message(regex=r"^order (?P<number>\d+) (?P<action>\w+)$")
    def order(message: MessageContext, number: str, action: str) -> None:
        seen.append((number, action))

    deliver(factory.message("order 42 cancel"))
    deliver(factory.message("what about order 42?"))
    assert seen == [("42", "cancel")]
    # The message that did not match left no run behind.
    assert len(ran()) == 1


def test_on_message_unnamed_groups_become_positional_arguments(factory, deliver) -> None:
    seen: list[tuple[str, ...]] = []

    @on_message(r"(\w+)@(\w+)")
    def address(message: MessageContext, user: str, host: str) -> None:
        seen.append((user, host))

    deliver(factory.message("write to anna@example please"))
    assert seen == [("anna", "example")]


def test_on_message_chat_type_filter(factory, deliver) -> None:
    private: list[str] = []
    group: list[str] = []

    @on_message(chat_type=ChatType.PRIVATE)
    def in_private(message: MessageContext) -> None:
        private.append(message.text)

    @on_message(chat_type=["C", "O"])
    def in_group(message: MessageContext) -> None:
        group.append(message.text)

    deliver(factory.message("just us"))
    deliver(factory.message("everyone", chat_id=12))
    assert private == ["just us"]
    assert group == ["everyone"]


def test_on_message_bare_takes_every_new_message_but_not_edits(factory, deliver) -> None:
    seen: list[str] = []

    @on_message
    def anything(message: MessageContext) -> None:
        seen.append(message.text)

    deliver(factory.message("a", message_id=7001))
    deliver(factory.message_update(7001, "b"))
    assert seen == ["a"]


def test_messages_written_by_bots_never_reach_on_message(factory, deliver) -> None:
    seen: list[str] = []

    @on_message
    def anything(message: MessageContext) -> None:
        seen.append(message.text)

    payload = factory.message("I am a bot")
    payload["data"]["USER"]["IS_BOT"] = "Y"
    deliver(payload)
    deliver(factory.message("hi"))
    assert seen == ["hi"]


# --------------------------------------------------------------------------- on_join, on_event


def test_on_join_bare_and_filtered(factory, deliver) -> None:
    every: list[str] = []
    groups: list[str] = []

    @on_join
    def welcome(join: JoinContext) -> None:
        every.append(join.chat.dialog_id)

    @on_join(chat_type="C")
    def group_welcome(join: JoinContext) -> None:
        groups.append(join.chat.dialog_id)

    deliver(factory.join())
    deliver(factory.join(chat_id=8))
    assert every == [str(factory.user_id), "chat8"]
    assert groups == ["chat8"]


def test_on_event_by_name_for_known_and_unknown_events(factory, deliver, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    seen: list[tuple[str, str]] = []

    @on_event("onAppUpdate", "ONCRMLEADADD")
    def lifecycle(event: Any) -> None:
        seen.append((event.event_name, type(event).__name__))

    deliver(factory.update("5"))
    deliver(factory._envelope("ONCRMLEADADD", {"FIELDS": {"ID": "3"}}))
    deliver(factory.message("not for it"))
    assert seen == [("ONAPPUPDATE", "AppContext"), ("ONCRMLEADADD", "GenericContext")]


def test_on_event_needs_a_name() -> None:
    with pytest.raises(ValueError, match="event name"):
        on_event()


# --------------------------------------------------------------------------- fan-out, order, stop


def test_several_handlers_fan_out_in_priority_order(factory, deliver) -> None:
    order: list[str] = []

    @on_command("echo")
    def default(command: CommandContext) -> None:
        order.append("default")

    @on_command("echo", priority=10)
    def early(command: CommandContext) -> None:
        order.append("early")

    @on_command("echo", priority=-5)
    def late(command: CommandContext) -> None:
        order.append("late")

    @on_event("ONIMCOMMANDADD")
    def audit(event: Any) -> None:
        order.append("audit")

    def plain(sender: Any, command: CommandContext, **kwargs: Any) -> None:
        order.append("plain")

    signals.command_received.connect(plain, weak=False)
    try:
        deliver(factory.command("echo", "x"))
    finally:
        signals.command_received.disconnect(plain)
    # Highest priority first; equal priorities: event_received receivers, then the kind
    # signal's, each in the order they were connected.
    assert order == ["early", "audit", "default", "plain", "late"]
    assert [r.status for r in ran()] == ["succeeded"] * 5


def test_a_handler_can_stop_the_ones_after_it(factory, deliver) -> None:
    order: list[str] = []

    @on_message(regex="^secret", priority=5)
    def gate(message: MessageContext) -> None:
        order.append("gate")
        message.stop()

    @on_message
    def everyone(message: MessageContext) -> None:
        order.append("everyone")

    deliver(factory.message("secret plan"))
    deliver(factory.message("public plan"))
    assert order == ["gate", "everyone"]
    gate_run, everyone_run = ran()
    assert gate_run.handler.endswith("gate") and gate_run.stopped
    assert everyone_run.handler.endswith("everyone") and not everyone_run.stopped
    assert Event.objects.filter(status="processed").count() == 2


def test_async_handlers_run_too(factory, deliver) -> None:
    seen: list[str] = []

    @on_message
    async def polite(message: MessageContext) -> None:
        seen.append(message.text)

    deliver(factory.message("async hello"))
    assert seen == ["async hello"]
    assert ran()[0].status == "succeeded"


# --------------------------------------------------------------------------- the registry


def test_routes_are_ordinary_receivers_of_their_signal(factory) -> None:
    """Sent with plain Signal.send, a route still filters and calls its handler."""
    seen: list[str] = []

    @on_command("echo")
    def echo(command: CommandContext) -> None:
        seen.append(command.name)

    [route] = router.routes
    assert isinstance(route, Route)
    assert route in live_receivers(signals.command_received, ev.CommandAdd)

    class Fake:
        name = "ECHO"

    class Other:
        name = "help"

    signals.command_received.send(ev.CommandAdd, command=Fake())
    signals.command_received.send(ev.CommandAdd, command=Other())
    assert seen == ["ECHO"]


def test_isolated_routers_forget_their_routes_and_restore_the_old_ones() -> None:
    local = Router()

    @local.on_command("outer")
    def outer(command: CommandContext) -> None: ...

    with local.isolated():
        assert list(local.routes) == []
        assert not signals.command_received.has_listeners(ev.CommandAdd)

        @local.on_command("inner")
        def inner(command: CommandContext) -> None: ...

        assert [r.handler for r in local.routes] == [inner]
    assert [r.handler for r in local.routes] == [outer]
    assert signals.command_received.has_listeners(ev.CommandAdd)
    local.clear()
    assert not signals.command_received.has_listeners(ev.CommandAdd)
