"""Every signal fires for its kind of event, after the commit, with a context of stored rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from django.dispatch import Signal

from imbot_app import events as ev
from imbot_app import signals
from imbot_app.dispatch.context import (
    AppContext,
    BotDeletedContext,
    CommandContext,
    EventContext,
    GenericContext,
    JoinContext,
    MessageContext,
)
from imbot_app.dispatch.event_run import live_receivers
from imbot_app.dispatch.loading import load
from imbot_app.dispatch.routing import handler_path
from imbot_app.inbound.store import REDACTED
from imbot_app.models import Bot, Chat, ChatUser, CommandInvocation, Event, HandlerRun, Message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_routes")]


class Received:
    """A real receiver that remembers every call it got."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})

    @property
    def contexts(self) -> list[Any]:
        return [value for call in self.calls for value in call.values() if is_context(value)]


def is_context(value: Any) -> bool:
    return isinstance(value, EventContext)


@pytest.fixture
def listen() -> Iterator[Callable[..., Received]]:
    """Connect a recording receiver to a signal for the duration of the test."""
    connected: list[tuple[Signal, Received]] = []

    def connect(signal: Signal, sender: Any = None) -> Received:
        received = Received()
        signal.connect(received, sender=sender, weak=False)
        connected.append((signal, received))
        return received

    yield connect
    for signal, received in connected:
        signal.disconnect(received)


# --------------------------------------------------------------------------- each kind


def test_message_added_gets_the_stored_rows_and_the_text(factory, deliver, listen) -> None:
    added = listen(signals.message_added)
    response = deliver(factory.message("Hello there", chat_id=42))

    [call] = added.calls
    assert call["sender"] is ev.MessageAdd
    message: MessageContext = call["message"]
    assert isinstance(message, MessageContext)
    assert message.event == Event.objects.get(pk=response.json()["event_id"])
    assert message.event_name == "ONIMBOTMESSAGEADD"
    assert message.portal.member_id == factory.member_id
    assert message.bot == Bot.objects.get(bot_id=factory.bot_id)
    assert message.chat == Chat.objects.get(dialog_id="chat42")
    assert message.chat_type == "C" and not message.is_private
    assert message.author == ChatUser.objects.get(user_id=factory.user_id)
    assert message.message == Message.objects.get(message_id=message.message_id)
    assert message.text == "Hello there"
    assert message.text_original == f"[USER={factory.bot_id}]Bot[/USER] Hello there"
    assert message.mentions == (factory.bot_id,)
    assert message.files == ()
    assert message.language == "en"


def test_message_files_become_file_infos(factory, deliver, listen) -> None:
    added = listen(signals.message_added)
    payload = factory.message("see attached")
    payload["data"]["PARAMS"]["FILES"] = {
        "77": {
            "id": "77",
            "name": "report.pdf",
            "type": "file",
            "size": "1024",
            "image": "",
            "urlDownload": "https://example.bitrix24.com/disk/77",
        }
    }
    deliver(payload)

    [file] = added.calls[0]["message"].files
    assert (file.id, file.name, file.size, file.image) == ("77", "report.pdf", 1024, False)
    assert file.url_download == "https://example.bitrix24.com/disk/77"


def test_message_updated_and_deleted(factory, deliver, listen) -> None:
    updated = listen(signals.message_updated)
    deleted = listen(signals.message_deleted)
    deliver(factory.message("first", message_id=5001))
    deliver(factory.message_update(5001, "second"))
    deliver(factory.message_delete(5001))

    [update] = updated.calls
    assert update["sender"] is ev.MessageUpdate
    assert update["message"].text == "second"
    assert update["message"].message.edited_at is not None
    [delete] = deleted.calls
    assert delete["sender"] is ev.MessageDelete
    assert delete["message"].message_id == 5001
    assert delete["message"].message.deleted_at is not None


def test_command_received_gets_name_params_context_and_chat(factory, deliver, listen) -> None:
    received = listen(signals.command_received)
    deliver(factory.command("echo", "test", command_id=103, context="KEYBOARD", message_id=33899))

    [call] = received.calls
    assert call["sender"] is ev.CommandAdd
    command: CommandContext = call["command"]
    assert isinstance(command, CommandContext)
    assert (command.name, command.params, command.context) == ("echo", "test", "KEYBOARD")
    assert command.command_id == 103
    assert command.message_id == 33899
    assert command.chat.dialog_id == str(factory.user_id)
    assert command.bot is not None and command.bot.bot_id == factory.bot_id
    assert command.user is not None and command.user.user_id == factory.user_id
    assert command.invocation == CommandInvocation.objects.get()
    assert command.args == ("test",)


def test_bot_joined_chat(factory, deliver, listen) -> None:
    joined = listen(signals.bot_joined_chat)
    deliver(factory.join(chat_id=77))

    join: JoinContext = joined.calls[0]["join"]
    assert isinstance(join, JoinContext)
    assert join.chat.dialog_id == "chat77"
    assert join.bot is not None and join.bot.bot_id == factory.bot_id
    assert join.user is not None and join.user.user_id == factory.user_id
    assert join.access_history is True


def test_bot_deleted(factory, deliver, listen) -> None:
    deleted = listen(signals.bot_deleted)
    deliver(factory.bot_delete())

    deletion: BotDeletedContext = deleted.calls[0]["deletion"]
    assert isinstance(deletion, BotDeletedContext)
    assert (deletion.bot_id, deletion.bot_code) == (factory.bot_id, factory.bot_code)
    assert deletion.bot is not None and deletion.bot.deleted_at is not None


def test_app_installed_updated_uninstalled(factory, deliver, listen, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    installed = listen(signals.app_installed)
    updated = listen(signals.app_updated)
    uninstalled = listen(signals.app_uninstalled)
    deliver(factory.install())
    deliver(factory.update("3"))
    deliver(factory.uninstall(clean=True))

    install: AppContext = installed.calls[0]["app"]
    assert isinstance(install, AppContext)
    assert (install.event_name, install.version, install.language) == ("ONAPPINSTALL", "1", "en")
    update: AppContext = updated.calls[0]["app"]
    assert (update.version, update.previous_version) == ("3", "2")
    uninstall: AppContext = uninstalled.calls[0]["app"]
    assert uninstall.clean is True
    assert uninstall.portal.status == "uninstalled"


def test_event_received_fires_for_every_event_known_or_not(factory, deliver, listen) -> None:
    everything = listen(signals.event_received)
    deliver(factory.message("hi"))
    deliver(factory.command("echo", "x"))
    deliver(factory.join())
    unknown = factory._envelope("ONCRMLEADADD", {"FIELDS": {"ID": "5"}})
    deliver(unknown)

    names = [call["event"].event_name for call in everything.calls]
    assert names == ["ONIMBOTMESSAGEADD", "ONIMCOMMANDADD", "ONIMBOTJOINCHAT", "ONCRMLEADADD"]
    kinds = [type(call["event"]) for call in everything.calls]
    assert kinds == [MessageContext, CommandContext, JoinContext, GenericContext]
    generic = everything.calls[-1]
    assert generic["sender"] is ev.GenericEvent
    assert generic["event"].data["FIELDS"] == {"ID": "5"}


def test_event_received_runs_before_the_kind_signal(factory, deliver, listen) -> None:
    order: list[str] = []

    def first(sender: Any, **kwargs: Any) -> None:
        order.append("event_received")

    def second(sender: Any, **kwargs: Any) -> None:
        order.append("message_added")

    signals.message_added.connect(second, weak=False)
    signals.event_received.connect(first, weak=False)
    try:
        deliver(factory.message("order"))
    finally:
        signals.message_added.disconnect(second)
        signals.event_received.disconnect(first)
    assert order == ["event_received", "message_added"]


def test_a_sender_filter_selects_the_event_class(factory, deliver, listen) -> None:
    updates_only = listen(signals.event_received, sender=ev.MessageUpdate)
    deliver(factory.message("a", message_id=6001))
    deliver(factory.message_update(6001, "b"))
    assert [call["event"].event_name for call in updates_only.calls] == ["ONIMBOTMESSAGEUPDATE"]


# --------------------------------------------------------------------------- guards


def test_a_message_written_by_a_bot_reaches_no_message_receiver(factory, deliver, listen) -> None:
    added = listen(signals.message_added)
    everything = listen(signals.event_received)
    payload = factory.message("beep")
    payload["data"]["USER"]["IS_BOT"] = "Y"
    deliver(payload)

    assert ChatUser.objects.get(user_id=factory.user_id).is_bot
    assert added.calls == []
    # The event itself is still announced (auditing), and it counts as processed.
    assert len(everything.calls) == 1
    assert everything.calls[0]["event"].is_from_bot
    assert Event.objects.get().status == Event.Status.PROCESSED


def _values(value: Any) -> Iterator[str]:
    """Every string reachable from a context's own fields (rows included, as their fields)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _values(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _values(getattr(value, f.name))
    elif hasattr(value, "_meta"):
        for f in value._meta.concrete_fields:
            yield from _values(f.value_from_object(value))


def test_contexts_carry_no_tokens(factory, deliver, listen) -> None:
    everything = listen(signals.event_received)
    payloads = [
        factory.message("hi"),
        factory.command("echo", "x"),
        factory.join(),
        factory._envelope("ONCRMLEADADD", {"FIELDS": {"ID": "1"}, "auth": factory.auth()}),
    ]
    tokens: set[str | None] = set()
    for payload in payloads:
        for block in [payload["auth"], *payload["data"].get("BOT", {}).values()]:
            tokens.update(block.get(k) for k in ("access_token", "refresh_token"))
        for entry in payload["data"].get("COMMAND", {}).values():
            tokens.update(entry.get(k) for k in ("access_token", "refresh_token"))
        deliver(payload)
    tokens.discard(None)
    assert tokens
    seen: set[str] = set()
    for call in everything.calls:
        context = call["event"]
        fields = {f.name: getattr(context, f.name) for f in dataclasses.fields(context)}
        fields.pop("portal")  # the Portal row: its application_token is checked separately
        fields["event"] = {"payload": context.event.payload}
        seen.update(_values(fields))
    assert not tokens & seen
    assert REDACTED in seen  # the generic event's nested auth was redacted, not dropped


# --------------------------------------------------------------------------- rebuilding


def test_contexts_are_rebuilt_from_the_database_alone(factory, deliver, listen) -> None:
    received = listen(signals.command_received)
    response = deliver(factory.command("echo", "again", chat_id=9))
    live: CommandContext = received.calls[0]["command"]

    stored = Event.objects.get(pk=response.json()["event_id"])
    rebuilt = load(stored).primary
    assert isinstance(rebuilt, CommandContext)
    for name in ("name", "params", "context", "message_id", "command_id", "chat", "bot", "user"):
        assert getattr(rebuilt, name) == getattr(live, name), name


def test_handler_failed_is_sent_with_the_exception_and_the_run(factory, deliver, listen) -> None:
    failures = listen(signals.handler_failed)

    def broken(sender: Any, message: MessageContext, **kwargs: Any) -> None:
        raise LookupError("no such order")

    signals.message_added.connect(broken, weak=False)
    try:
        deliver(factory.message("order 5"))
    finally:
        signals.message_added.disconnect(broken)

    [call] = failures.calls
    assert call["sender"] is broken
    assert isinstance(call["exception"], LookupError)
    assert call["handler"] == handler_path(broken)
    assert call["handler"].endswith("<locals>.broken")
    assert isinstance(call["context"], MessageContext)
    run: HandlerRun = call["run"]
    assert run.status == HandlerRun.Status.FAILED
    assert "LookupError: no such order" in run.traceback


def test_live_receivers_lists_what_send_would_call_in_order() -> None:
    """Guards the one private Django API dispatch relies on (Signal._live_receivers)."""
    signal = Signal()
    calls: list[str] = []

    def a(sender: Any, **kwargs: Any) -> None:
        calls.append("a")

    async def b(sender: Any, **kwargs: Any) -> None:
        calls.append("b")

    def c(sender: Any, **kwargs: Any) -> None:
        calls.append("c")

    signal.connect(a, weak=False)
    signal.connect(b, weak=False)
    signal.connect(c, weak=False, sender=ev.MessageAdd)
    assert live_receivers(signal, ev.MessageAdd) == [a, c, b]
    assert live_receivers(signal, ev.MessageUpdate) == [a, b]
    signal.send(ev.MessageAdd)
    assert calls == ["a", "c", "b"]


def test_token_signals_are_declared_for_the_rest_client() -> None:
    assert isinstance(signals.token_refreshed, Signal)
    assert isinstance(signals.token_refresh_failed, Signal)
    assert signals.token_refreshed is not signals.token_refresh_failed
