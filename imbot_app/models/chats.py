"""Chats and the people in them, as each portal numbers them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from imbot_app.models.portals import Bot, Portal


class ChatType(models.TextChoices):
    """Bitrix24's MESSAGE_TYPE / CHAT_TYPE letters."""

    PRIVATE = "P", "private"
    GROUP = "C", "group"
    OPEN = "O", "open"
    OPEN_LINE = "L", "open line"
    SYSTEM = "S", "system"
    CHANNEL = "N", "channel"
    OPEN_CHANNEL = "J", "open channel"
    THREAD = "T", "comments"
    COPILOT = "A", "copilot"
    COLLAB = "B", "collab"
    EXTERNAL = "X", "external"


class Chat(models.Model):
    """A dialog the bot takes part in.

    ``dialog_id`` is what replies are addressed to: ``chatN`` for group chats, the other
    person's user id for private ones.  A private dialog id names the person, not the chat, so
    a private chat is also keyed by the bot it is with.
    """

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="chats")
    # RESTRICT, not SET_NULL: two private chats with one person but different bots would
    # collide on (portal, dialog_id) once their bot was cleared.  Deleting the whole portal
    # still cascades; deleting a bot that has private chats is refused.
    bot = models.ForeignKey(
        Bot, on_delete=models.RESTRICT, related_name="private_chats", null=True, blank=True
    )
    dialog_id = models.CharField(max_length=64)
    chat_id = models.BigIntegerField(null=True, blank=True)
    type = models.CharField(max_length=2, blank=True)
    title = models.CharField(max_length=255, blank=True)
    entity_type = models.CharField(max_length=64, blank=True)
    entity_id = models.CharField(max_length=255, blank=True)
    user_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portal_id", "dialog_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "dialog_id", "bot"],
                name="imbot_chat_unique_private",
                condition=Q(bot__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["portal", "dialog_id"],
                name="imbot_chat_unique",
                condition=Q(bot__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.dialog_id

    @property
    def is_private(self) -> bool:
        return self.type == ChatType.PRIVATE


class ChatUser(models.Model):
    """A person (or bot, or connector guest) seen on a portal."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="chat_users")
    user_id = models.BigIntegerField()
    name = models.CharField(max_length=255, blank=True)
    first_name = models.CharField(max_length=255, blank=True)
    last_name = models.CharField(max_length=255, blank=True)
    work_position = models.CharField(max_length=255, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    is_bot = models.BooleanField(default=False)
    is_extranet = models.BooleanField(default=False)
    is_connector = models.BooleanField(default=False)
    is_network = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portal_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "user_id"], name="imbot_chatuser_unique"),
        ]

    def __str__(self) -> str:
        return self.name or f"user {self.user_id}"
