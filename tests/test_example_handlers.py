"""The example bot (project/imbot_handlers.py), driven through the endpoint as Bitrix24 would."""

from __future__ import annotations

import logging

import pytest

from imbot_app.dispatch.routing import router
from imbot_app.models import Event, HandlerRun
from imbot_app.outbound.calls import OutgoingCall, PendingSender, get_sender
from project.imbot_handlers import HELP_TEXT

pytestmark = pytest.mark.django_db


class RecordingSender:
    """A sender that keeps the calls instead of sending them (a real Sender, not a mock)."""

    def __init__(self) -> None:
        self.calls: list[OutgoingCall] = []

    def send(self, call: OutgoingCall) -> int:
        self.calls.append(call)
        return 40_000 + len(self.calls)


@pytest.fixture
def sent(settings) -> list[OutgoingCall]:
    sender = RecordingSender()
    settings.IMBOT_SENDER = sender
    return sender.calls


def test_the_example_handlers_are_discovered_at_start_up() -> None:
    paths = [route.path for route in router.routes]
    assert "project.imbot_handlers.echo" in paths
    assert "project.imbot_handlers.private_help" in paths


def test_echo_answers_with_its_params(factory, deliver, sent) -> None:
    """The ONIMCOMMANDADD reference page's example: /echo test, COMMAND_ID 103, MESSAGE_ID 33899."""
    response = deliver(factory.command("echo", "test", command_id=103, message_id=33899))

    [call] = sent
    assert call.method == "imbot.command.answer"
    assert call.params == {"COMMAND_ID": 103, "MESSAGE_ID": 33899, "MESSAGE": "test"}
    assert call.bot_id == factory.bot_id
    assert call.portal.member_id == factory.member_id
    assert call.event.pk == response.json()["event_id"]
    [run] = HandlerRun.objects.all()
    assert (run.handler, run.status) == ("project.imbot_handlers.echo", "succeeded")


def test_echo_without_text_says_so(factory, deliver, sent) -> None:
    deliver(factory.command("echo", ""))
    assert sent[0].params["MESSAGE"] == "You sent /echo without text."


def test_a_private_message_gets_the_help_text(factory, deliver, sent) -> None:
    deliver(factory.message("hello?"))

    [call] = sent
    assert call.method == "imbot.message.add"
    assert call.params == {
        "BOT_ID": factory.bot_id,
        "DIALOG_ID": str(factory.user_id),
        "MESSAGE": HELP_TEXT,
    }
    assert Event.objects.get().status == Event.Status.PROCESSED


def test_group_messages_and_slash_commands_get_no_help(factory, deliver, sent) -> None:
    deliver(factory.message("hello all", chat_id=5))
    deliver(factory.message("/echo typed as text"))
    assert sent == []
    assert not HandlerRun.objects.exists()


def test_help_answers_with_the_help_text(factory, deliver, sent) -> None:
    deliver(factory.command("help", "", command_id=104))
    [call] = sent
    assert call.method == "imbot.command.answer"
    assert call.params["MESSAGE"] == HELP_TEXT
    assert "/help" in HELP_TEXT


def test_other_commands_get_no_answer(factory, deliver, sent) -> None:
    deliver(factory.command("weather", "", command_id=105))
    assert sent == []


def test_pending_sender_logs_replies_without_sending(factory, deliver, caplog, settings):
    settings.IMBOT_SENDER = "imbot_app.outbound.calls.PendingSender"
    caplog.set_level(logging.INFO, logger="imbot_app.pending")
    deliver(factory.command("echo", "hello"))

    [record] = [r for r in caplog.records if r.name == "imbot_app.pending"]
    assert "pending (not sent" in record.getMessage()
    assert "imbot.command.answer" in record.getMessage()
    assert "'MESSAGE': 'hello'" in record.getMessage()
    assert isinstance(get_sender(), PendingSender)


def test_the_default_sender_calls_bitrix24(settings) -> None:
    from imbot_app.outbound.sender import RestSender

    del settings.IMBOT_SENDER
    assert isinstance(get_sender(), RestSender)


def test_a_sender_without_send_is_refused(settings) -> None:
    settings.IMBOT_SENDER = "builtins.object"
    with pytest.raises(TypeError, match="send"):
        get_sender()
