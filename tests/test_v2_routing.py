"""Chatbots 2.0 events reach handlers: on_reaction, on_context, their signals, and the v1
decorators (a handler written for v1 fires for the v2 event with the same context objects)."""

from __future__ import annotations

from typing import Any

import pytest

import imbot_app
from imbot_app import events as ev
from imbot_app import on_command, on_context, on_join, on_message, on_reaction, signals
from imbot_app.dispatch.context import (
    CommandContext,
    ContextGetContext,
    JoinContext,
    MessageContext,
    ReactionContext,
)
from imbot_app.dispatch.routing import router
from imbot_app.models import Bot, HandlerRun, Portal
from imbot_app.testing import V2EventFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_routes")]


@pytest.fixture
def v2(db: None) -> V2EventFactory:
    events = V2EventFactory(event_mode="webhook")
    portal = Portal.objects.create(
        member_id=events.member_id,
        domain=events.domain,
        application_token=events.application_token,
    )
    Bot.objects.create(portal=portal, bot_id=events.bot_id, code=events.bot_code, api="v2")
    return events


@pytest.fixture(params=[False, True], ids=["form", "json"])
def send(request: Any, deliver: Any) -> Any:
    return lambda event: deliver(event.as_webhook(), as_json=request.param)


def test_the_package_exports_the_v2_decorators() -> None:
    assert imbot_app.on_reaction == router.on_reaction
    assert imbot_app.on_context == router.on_context
    assert {"on_reaction", "on_context"} <= set(imbot_app.__all__)


def test_on_reaction_gets_the_reaction_its_message_chat_and_user(v2, send) -> None:
    seen: list[ReactionContext] = []

    @on_reaction
    def any_reaction(reaction: ReactionContext) -> None:
        seen.append(reaction)

    send(v2.message_add("Hello! How can I help?", message_id=789, group=True))
    send(v2.reaction_change(789, "like"))
    send(v2.reaction_change(789, "like", action="delete"))

    assert [(r.reaction, r.action, r.added) for r in seen] == [
        ("like", "add", True),
        ("like", "delete", False),
    ]
    first = seen[0]
    assert first.event_name == "ONIMBOTV2REACTIONCHANGE"
    assert first.message_id == 789
    assert first.message is not None and first.message.text == "Hello! How can I help?"
    assert first.chat.dialog_id == "chat5" and first.chat.pk is not None
    assert first.user is not None and first.user.name == "John Smith"
    assert first.bot is not None and first.bot.bot_id == 456


def test_on_reaction_filters_on_code_action_and_chat_type(v2, send) -> None:
    seen: list[tuple[str, str]] = []

    @on_reaction(reaction=["like", "fire"], action="add", chat_type="C")
    def liked(reaction: ReactionContext) -> None:
        seen.append((reaction.reaction, reaction.action))

    send(v2.reaction_change(789, "like"))
    send(v2.reaction_change(789, "cry"))
    send(v2.reaction_change(789, "fire", action="delete"))
    send(v2.reaction_change(789, "fire", group=False))
    send(v2.reaction_change(789, "fire"))

    assert seen == [("like", "add"), ("fire", "add")]
    with pytest.raises(ValueError, match="add"):
        on_reaction(action="removed")


def test_on_context_gets_the_link_object_read_only(v2, send) -> None:
    seen: list[ContextGetContext] = []

    @on_context(entity_type="task")
    def task_link(context: ContextGetContext) -> None:
        seen.append(context)

    send(v2.context_get())
    send(v2.context_get({"entityId": 9, "entityType": "deal", "source": "link"}))

    (only,) = seen
    # As sent: form-encoded webhooks carry every scalar as a string.
    assert (only.entity_type, str(only.entity_id)) == ("task", "164")
    assert {k: str(v) for k, v in only.context.items()} == {
        "entityId": "164",
        "entityType": "task",
        "source": "link",
    }
    with pytest.raises(TypeError):
        only.context["entityId"] = 1  # type: ignore[index]
    assert only.chat.dialog_id == "1" and only.user is not None and only.user.user_id == 1
    assert HandlerRun.objects.filter(status=HandlerRun.Status.SUCCEEDED).count() == 1


def test_the_signals_are_sent_with_the_typed_class_as_sender(v2, send) -> None:
    heard: list[tuple[Any, str]] = []

    def on_reaction_signal(sender: Any, reaction: ReactionContext, **kwargs: Any) -> None:
        heard.append((sender, reaction.reaction))

    def on_context_signal(sender: Any, context: ContextGetContext, **kwargs: Any) -> None:
        heard.append((sender, context.entity_type))

    signals.reaction_changed.connect(on_reaction_signal, sender=ev.ReactionChange)
    signals.context_requested.connect(on_context_signal, sender=ev.ContextGet)
    try:
        send(v2.reaction_change(789, "like"))
        send(v2.context_get())
    finally:
        signals.reaction_changed.disconnect(on_reaction_signal, sender=ev.ReactionChange)
        signals.context_requested.disconnect(on_context_signal, sender=ev.ContextGet)
    assert heard == [(ev.ReactionChange, "like"), (ev.ContextGet, "task")]


def test_v1_decorators_fire_for_v2_events_with_the_same_contexts(v2, send) -> None:
    seen: list[Any] = []

    @on_message(r"^order (?P<number>\d+)$")
    def order(message: MessageContext, number: str) -> None:
        seen.append(("message", number, message.author.name if message.author else None))

    @on_command("help")
    def help_(command: CommandContext) -> None:
        seen.append(("command", command.name, command.params))

    @on_join(chat_type="C")
    def joined(join: JoinContext) -> None:
        seen.append(("join", join.chat.dialog_id, join.bot.bot_id if join.bot else None))

    send(v2.message_add("order 42"))
    send(v2.command_add("help", "topic"))
    send(v2.join_chat())

    assert seen == [
        ("message", "42", "John Smith"),
        ("command", "help", "topic"),
        ("join", "chat5", 456),
    ]
