"""What was said: messages (both directions) and the commands people ran."""

from __future__ import annotations

from django.db import models

from imbot_app.models.chats import Chat, ChatUser
from imbot_app.models.events import Event
from imbot_app.models.portals import Bot, Command, Portal


class Message(models.Model):
    """A chat message, in (written to the bot) or out (written by it)."""

    class Direction(models.TextChoices):
        IN = "in", "in"
        OUT = "out", "out"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="messages")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    bot = models.ForeignKey(
        Bot, on_delete=models.SET_NULL, related_name="messages", null=True, blank=True
    )
    author = models.ForeignKey(
        ChatUser, on_delete=models.SET_NULL, related_name="messages", null=True, blank=True
    )
    event = models.ForeignKey(
        Event, on_delete=models.SET_NULL, related_name="messages", null=True, blank=True
    )
    message_id = models.BigIntegerField()
    direction = models.CharField(max_length=3, choices=Direction.choices, default=Direction.IN)
    # MESSAGE as Bitrix24 sends it: in group chats the [USER=..] mentions are stripped.
    text = models.TextField(blank=True)
    # MESSAGE_ORIGINAL: the text with its BB codes, mentions included.
    text_original = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chat_id", "message_id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "message_id"], name="imbot_message_unique"),
        ]
        indexes = [
            models.Index(fields=["chat", "message_id"], name="imbot_message_chat"),
            models.Index(fields=["-created_at"], name="imbot_message_created"),
            # The admin's portal and direction filters, newest first.
            models.Index(fields=["portal", "-created_at"], name="imbot_message_portal"),
            models.Index(fields=["direction", "-created_at"], name="imbot_message_direction"),
        ]

    def __str__(self) -> str:
        return f"message {self.message_id}"


class CommandInvocation(models.Model):
    """A command a user ran (ONIMCOMMANDADD): which, with what, from where."""

    class Context(models.TextChoices):
        TEXTAREA = "TEXTAREA", "typed"
        KEYBOARD = "KEYBOARD", "keyboard button"
        MENU = "MENU", "context menu"

    # SET_NULL: an invocation is chat history, like a Message; pruning old events keeps it.
    event = models.ForeignKey(
        Event, on_delete=models.SET_NULL, related_name="invocations", null=True, blank=True
    )
    command = models.ForeignKey(Command, on_delete=models.CASCADE, related_name="invocations")
    chat = models.ForeignKey(
        Chat, on_delete=models.SET_NULL, related_name="invocations", null=True, blank=True
    )
    user = models.ForeignKey(
        ChatUser, on_delete=models.SET_NULL, related_name="invocations", null=True, blank=True
    )
    message_id = models.BigIntegerField(null=True, blank=True)
    params = models.TextField(blank=True)
    context = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The chat transcript shows each message's invocations: (chat, message_id) lookups.
            models.Index(fields=["chat", "message_id"], name="imbot_invocation_message"),
        ]

    def __str__(self) -> str:
        return f"/{self.command.command} {self.params}".strip()
