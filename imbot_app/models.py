"""What imbot_app remembers: portals and their tokens, bots, chats, people, messages, events.

Every row belongs to a Portal, the Bitrix24 account identified by ``member_id``.  Bitrix24 ids
(bot, command, chat, user, message) are stored as they are on the portal and are unique only
within it, so every unique constraint starts with the portal.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Portal(models.Model):
    """A Bitrix24 account that installed the application, keyed by ``member_id``.

    Other models order by ``portal_id``, never ``portal``: naming the relation would make every
    default-ordered query join this table to sort by its ``domain``.
    """

    class Status(models.TextChoices):
        INSTALLED = "installed", "installed"
        UNINSTALLED = "uninstalled", "uninstalled"
        REAUTH_REQUIRED = "reauth_required", "needs re-authorisation"

    member_id = models.CharField(max_length=64, unique=True)
    # Reached through an inbound webhook (IMBOT_WEBHOOK_URL) instead of an OAuth application:
    # its events carry IMBOT_WEBHOOK_CLIENT_ID, it has no tokens, and the URL is never stored.
    webhook = models.BooleanField(default=False)
    domain = models.CharField(max_length=255, blank=True)
    # Where REST calls go.  Taken only from verified installs or authenticated events.
    client_endpoint = models.URLField(max_length=255, blank=True)
    # The OAuth server of the portal's region (oauth.bitrix.info or oauth.bitrix24.tech).
    server_endpoint = models.URLField(max_length=255, blank=True)
    # The secret Bitrix24 sends with every event; compared in constant time.
    application_token = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INSTALLED)
    language = models.CharField(max_length=10, blank=True)
    # The Bitrix24 plan letter from auth[status]: L local, F free, D demo, T trial, P paid.
    plan = models.CharField(max_length=4, blank=True)
    installer_user_id = models.BigIntegerField(null=True, blank=True)
    app_version = models.CharField(max_length=20, blank=True)
    # This portal's REST budget when it differs from IMBOT_RATE_LIMIT / IMBOT_RATE_BURST
    # (Enterprise plans: 5 requests/s with bursts of 250).
    rate_limit = models.FloatField(null=True, blank=True)
    rate_burst = models.PositiveIntegerField(null=True, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    # The last registration of the declared bots and commands on this portal: when it
    # succeeded, or why it failed (shown in the admin; the installation itself is kept).
    registered_at = models.DateTimeField(null=True, blank=True)
    registration_error = models.TextField(blank=True)
    # Application events bound to our events URL with event.bind: {"ONAPPUPDATE": url, ...}.
    # Bitrix24 forgets them on uninstall, so the store empties this then.
    bound_events = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain or self.member_id

    @property
    def is_installed(self) -> bool:
        return self.status == self.Status.INSTALLED


class Credential(models.Model):
    """One OAuth token set per portal and Bitrix24 user (a bot is a user too)."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="credentials")
    user_id = models.BigIntegerField()
    access_token = models.CharField(max_length=255)
    refresh_token = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=1024, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "user_id"], name="imbot_credential_unique"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} on {self.portal_id}"


class Bot(models.Model):
    """A chat bot registered on a portal by this application.

    A bot Bitrix24 deleted keeps its row (``deleted_at``) with its chats and messages; when it
    is registered again under a new id, that is a new row.
    """

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="bots")
    bot_id = models.BigIntegerField()
    code = models.CharField(max_length=255, blank=True)
    # As registered by imbot_register (blank for a bot only seen in events so far).
    name = models.CharField(max_length=255, blank=True)
    type = models.CharField(max_length=1, blank=True)  # B, O, H or S
    openline = models.BooleanField(default=False)
    # Fingerprint of the declaration last sent to Bitrix24 (PROPERTIES and handler URLs):
    # a declaration whose fingerprint differs is sent again with imbot.update.
    spec_hash = models.CharField(max_length=64, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["portal_id", "bot_id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "bot_id"], name="imbot_bot_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code or 'bot'} #{self.bot_id}"


class Command(models.Model):
    """A slash command of a bot, as Bitrix24 knows it (``COMMAND_ID`` and the word)."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="commands")
    bot = models.ForeignKey(
        Bot, on_delete=models.CASCADE, related_name="commands", null=True, blank=True
    )
    command_id = models.BigIntegerField()
    command = models.CharField(max_length=255)
    # As registered by imbot_register: the title in the first declared language, COMMON
    # (None: not known, e.g. a command only seen in events), and the fingerprint of the rest.
    title = models.CharField(max_length=255, blank=True)
    common = models.BooleanField(null=True, blank=True)
    spec_hash = models.CharField(max_length=64, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    # Unregistered (or gone with its bot): kept, because its invocations are chat history.
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["portal_id", "command"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "command_id"], name="imbot_command_unique"),
        ]

    def __str__(self) -> str:
        return f"/{self.command}"


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


class Event(models.Model):
    """One delivery from Bitrix24, stored before anything acts on it.

    ``payload`` is the decoded body with every token replaced by :data:`REDACTED`.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed"
        INVALID = "invalid", "invalid"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=64)
    handler_id = models.BigIntegerField(null=True, blank=True)
    ts = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    payload = models.JSONField()
    dedup_key = models.CharField(max_length=255)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Who runs the event's handlers right now (host:pid:nonce) and until when that claim holds;
    # a claim whose holder died simply expires, so a redelivered task can take over.
    claimed_by = models.CharField(max_length=255, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # How many times handlers were started for this event (redeliveries and replays count).
    dispatch_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "dedup_key"], name="imbot_event_dedup"),
        ]
        indexes = [
            models.Index(fields=["name", "-received_at"], name="imbot_event_name"),
            models.Index(fields=["status", "-received_at"], name="imbot_event_status"),
            models.Index(fields=["-received_at"], name="imbot_event_received"),
            # The admin's portal filter, newest first.
            models.Index(fields=["portal", "-received_at"], name="imbot_event_portal"),
            # imbot_worker's queue: the events still waiting, oldest first.  Partial, so it
            # holds only the backlog, however big the table grows.
            models.Index(fields=["id"], name="imbot_event_waiting", condition=Q(status="received")),
        ]
        permissions = [("replay_event", "Can replay events (run their handlers again)")]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


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


class HandlerRun(models.Model):
    """One handler function run for one event: who ran, how long, what failed."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="handler_runs")
    handler = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # host:pid of the process that ran it (the web process inline, a worker with Celery).
    worker = models.CharField(max_length=255, blank=True)
    # The handler asked that the handlers after it be skipped; a rerun honours it again.
    stopped = models.BooleanField(default=False)

    class Meta:
        ordering = ["event_id", "started_at", "id"]
        indexes = [
            models.Index(fields=["status", "-started_at"], name="imbot_run_status"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} for event {self.event_id}"


class WorkerHeartbeat(models.Model):
    """One ``imbot_worker`` process, as it last reported itself (for the admin overview).

    Written every few seconds by the worker; a row whose ``last_seen`` is old belongs to a
    worker that stopped or died (its claims expire and other workers take its events over).
    """

    name = models.CharField(max_length=255, unique=True)  # host:pid
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    events_done = models.PositiveBigIntegerField(default=0)
    events_failed = models.PositiveBigIntegerField(default=0)
    # Events finished over the last minute, as the worker counted them.
    per_minute = models.PositiveIntegerField(default=0)
    stopped = models.BooleanField(default=False)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return self.name
