"""A chat's messages as a transcript: both directions in order, one page at a time.

Each entry is a stored :class:`~imbot_app.models.Message` (author, in or out, its text with
BB codes rendered safely by :func:`imbot_app.admin.bbcode.render_bbcode`, time, edited/deleted
marks, a link to the Event it came with) plus the commands run from it.  One page costs
three queries whatever its size: the count, the page of messages with their authors, and the
page's command invocations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.safestring import SafeString

from imbot_app.admin.badges import badge
from imbot_app.admin.bbcode import render_bbcode
from imbot_app.admin.lean import text_prefix
from imbot_app.admin.sections import Section, paginate
from imbot_app.conf import imbot_settings
from imbot_app.models import Chat, ChatUser, CommandInvocation, Message

__all__ = [
    "PAGE_PARAM",
    "PAGE_SIZE",
    "InvocationLine",
    "Transcript",
    "TranscriptEntry",
    "build",
    "members",
]

PAGE_SIZE = 50
PAGE_PARAM = "transcript_page"
MEMBERS_SHOWN = 50


@dataclass(frozen=True)
class InvocationLine:
    """A command run from a message: ``/echo hi`` (typed) by John at 10:02."""

    command: str
    params: str
    context: str
    user: str
    created_at: datetime

    @classmethod
    def of(cls, invocation: CommandInvocation) -> InvocationLine:
        contexts = dict(CommandInvocation.Context.choices)
        return cls(
            command=invocation.command.command,
            params=invocation.params,
            context=str(contexts.get(invocation.context, invocation.context or "typed")),
            user=str(invocation.user) if invocation.user is not None else "unknown",
            created_at=invocation.created_at,
        )


@dataclass(frozen=True)
class TranscriptEntry:
    message: Message
    html: SafeString
    invocations: tuple[InvocationLine, ...]
    event_url: str | None

    @property
    def direction_badge(self) -> SafeString:
        return badge(self.message.direction)

    @property
    def author(self) -> str:
        message = self.message
        if message.author is not None:
            return str(message.author)
        return "the bot" if message.direction == Message.Direction.OUT else "unknown"

    @property
    def outgoing(self) -> bool:
        return self.message.direction == Message.Direction.OUT


@dataclass(frozen=True)
class Transcript:
    section: Section
    entries: tuple[TranscriptEntry, ...]
    messages_url: str


def build(
    chat: Chat, request: HttpRequest, *, site_name: str = "admin", per_page: int = PAGE_SIZE
) -> Transcript:
    """The page of ``chat``'s transcript the request asks for; the latest page by default."""
    # Only as much text as the page renders (twice the limit: "\r\n" counts one once rendered).
    shown = text_prefix(2 * int(imbot_settings.ADMIN_TEXT_LIMIT) + 1)
    messages = (
        Message.objects.filter(chat=chat)
        .select_related("author")
        .defer("text", "text_original")
        .annotate(shown_text=shown)
        .order_by("message_id")
    )
    section = paginate(messages, request, param=PAGE_PARAM, per_page=per_page, last_by_default=True)
    page: list[Message] = section.rows
    by_message: dict[int, list[InvocationLine]] = {}
    if page:
        invocations = (
            CommandInvocation.objects.filter(
                chat=chat, message_id__in=[message.message_id for message in page]
            )
            .select_related("command", "user")
            .order_by("created_at", "id")
        )
        for invocation in invocations:
            if invocation.message_id is not None:
                by_message.setdefault(invocation.message_id, []).append(
                    InvocationLine.of(invocation)
                )
    entries = tuple(
        TranscriptEntry(
            message=message,
            html=render_bbcode(getattr(message, "shown_text", None) or ""),
            invocations=tuple(by_message.get(message.message_id, ())),
            event_url=(
                reverse(f"{site_name}:imbot_app_event_change", args=[message.event_id])
                if message.event_id
                else None
            ),
        )
        for message in page
    )
    messages_url = reverse(f"{site_name}:imbot_app_message_changelist") + f"?chat={chat.pk}"
    return Transcript(section, entries, messages_url)


def members(chat: Chat) -> QuerySet[ChatUser]:
    """People seen in ``chat``: authors of its messages and people who ran commands in it."""
    authors = Message.objects.filter(chat=chat, author__isnull=False).values("author_id")
    invokers = CommandInvocation.objects.filter(chat=chat, user__isnull=False).values("user_id")
    return ChatUser.objects.filter(Q(pk__in=authors) | Q(pk__in=invokers)).order_by(
        "name", "user_id"
    )
