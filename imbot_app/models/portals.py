"""Portals (the Bitrix24 accounts, by ``member_id``), their tokens, bots and commands."""

from __future__ import annotations

from django.db import models

from imbot_app.sealed_fields import DigestField, SealedTextField


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
    # The secret Bitrix24 sends with every event, kept only as an HMAC digest and compared
    # with imbot_app.sealing.token_matches (constant time).
    application_token = DigestField(max_length=255, blank=True)
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
    # Encrypted at rest with IMBOT_ENCRYPTION_KEYS (imbot_app.sealing); plaintext in Python.
    access_token = SealedTextField()
    refresh_token = SealedTextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=1024, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "user_id"], name="imbot_credential_unique"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} on {self.portal_id}"


class Registered(models.Model):
    """What Bot and Command share: registration by this app, and a deletion that keeps the row.

    ``spec_hash`` is the fingerprint of the declaration last sent to Bitrix24: one whose
    fingerprint differs is sent again.  A deleted bot or command keeps its row
    (``deleted_at``), because its messages and invocations are chat history.
    """

    spec_hash = models.CharField(max_length=64, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Bot(Registered):
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
    # The chat-bot API the bot was registered with: "v1" (imbot.*) or "v2" (imbot.v2.*, Chatbots
    # 2.0); its replies and registration calls are spelled by that version's protocol adapter.
    api = models.CharField(max_length=2, default="v1")
    # Chatbots 2.0 only: "fetch" (imbot_worker pulls its events with Event.get) or "webhook".
    event_mode = models.CharField(max_length=8, blank=True)
    # Chatbots 2.0 only, sealed: the botToken a bot registered through an inbound webhook
    # names itself with (at most 40 characters, chosen by us at registration).
    bot_token = SealedTextField(blank=True, default="")

    class Meta(Registered.Meta):
        ordering = ["portal_id", "bot_id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "bot_id"], name="imbot_bot_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code or 'bot'} #{self.bot_id}"


class Command(Registered):
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

    class Meta(Registered.Meta):
        ordering = ["portal_id", "command"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "command_id"], name="imbot_command_unique"),
        ]

    def __str__(self) -> str:
        return f"/{self.command}"
