"""System checks for settings that would leave a production bot open or broken.

W002 and W003 describe a configuration not finished yet (normal in development): they show in
``manage.py check`` and ``runserver`` only, not before every command (:mod:`.check_scope`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from imbot_app.check_scope import show_configuration_warnings
from imbot_app.conf import imbot_settings
from imbot_app.outbound.webhook import MIN_CLIENT_ID_LENGTH, WebhookUrlError, webhook_config


@register(Tags.security)
def check_install_verification(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not imbot_settings.VERIFY_INSTALL and not settings.DEBUG:
        messages.append(
            Warning(
                "IMBOT_VERIFY_INSTALL is off with DEBUG off: the first ONAPPINSTALL for any "
                "member_id is trusted without asking Bitrix24, so anyone who can reach the "
                "endpoint can register a portal.",
                hint="Set IMBOT_VERIFY_INSTALL=True and IMBOT_CLIENT_ID to your application's "
                "client id.",
                id="imbot_app.W001",
            )
        )
    if (
        imbot_settings.VERIFY_INSTALL
        and not imbot_settings.CLIENT_ID
        and show_configuration_warnings()
    ):
        messages.append(
            Warning(
                "IMBOT_VERIFY_INSTALL is on but IMBOT_CLIENT_ID is empty: every install will "
                "be refused, because app.info's answer cannot be matched to this application.",
                hint="Set IMBOT_CLIENT_ID to the client id from your Bitrix24 application.",
                id="imbot_app.W002",
            )
        )
    return messages


@register()
def check_declared_bots(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Invalid bot declarations, and a public URL Bitrix24 could not (safely) call."""
    from imbot_app.lifecycle.bots import declared_bots, needs_public_url, public_url_problem
    from imbot_app.lifecycle.specs import DeclarationError

    try:
        declared = declared_bots()
    except DeclarationError as exc:
        return [
            Error(
                f"Invalid bot declaration: {exc}",
                hint="Fix IMBOT_BOTS or the imbot_app.lifecycle.bots.declare() call.",
                id="imbot_app.E001",
            )
        ]
    if not declared:
        return []
    value = imbot_settings.PUBLIC_URL
    problem = public_url_problem(value)
    webhook_bots = [s.code for s in declared if s.api == "v2" and s.event_mode == "webhook"]
    if problem and webhook_bots:
        # Not a development state to wait out: such a bot cannot even be declared to Bitrix24.
        return [
            Error(
                f"{problem}. Chatbots 2.0 bot(s) {', '.join(webhook_bots)} are in webhook mode: "
                "Bitrix24 POSTs their events to IMBOT_PUBLIC_URL, and refuses to register them "
                "without it.",
                hint='Set IMBOT_PUBLIC_URL, or declare them with event_mode="fetch" (the worker '
                "pulls their events; no public address needed).",
                id="imbot_app.E002",
            )
        ]
    if problem and not (show_configuration_warnings() and needs_public_url(declared)):
        return []  # (fetch-mode Chatbots 2.0 bots need no public address)
    if problem:
        return [
            Warning(
                f"{problem}. Bots are declared but cannot be registered.",
                hint="Set IMBOT_PUBLIC_URL to the https:// address Bitrix24 reaches this site at.",
                id="imbot_app.W003",
            )
        ]
    if str(value).strip().lower().startswith("http://"):
        return [
            Warning(
                f"IMBOT_PUBLIC_URL {value!r} is plain http: Bitrix24 would send every event, "
                "with its tokens, in clear text.",
                hint="Serve the site over HTTPS (a reverse proxy or a tunnel) and use its https:// "
                "address.",
                id="imbot_app.W004",
            )
        ]
    return []


@register(Tags.security)
def check_webhook_mode(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Webhook mode needs both its settings, a real webhook URL and an unguessable CLIENT_ID."""
    url = imbot_settings.WEBHOOK_URL
    client_id = imbot_settings.WEBHOOK_CLIENT_ID
    if not url and not client_id:
        return []
    if not url or not client_id:
        given, missing = (
            ("IMBOT_WEBHOOK_URL", "IMBOT_WEBHOOK_CLIENT_ID")
            if url
            else ("IMBOT_WEBHOOK_CLIENT_ID", "IMBOT_WEBHOOK_URL")
        )
        return [
            Error(
                f"Webhook mode is half-configured: {given} is set but {missing} is not, so "
                "the webhook's events are refused and its bot cannot be registered.",
                hint="Set both (the inbound webhook URL, and the CLIENT_ID the bot is "
                "registered with: `manage.py imbot_register --generate-client-id`), or neither.",
                id="imbot_app.E010",
            )
        ]
    messages: list[CheckMessage] = []
    try:
        config = webhook_config(strict=True)
    except WebhookUrlError as exc:
        return [
            Error(
                f"IMBOT_WEBHOOK_URL is not an inbound webhook URL: {exc}.",
                hint="Copy it from Bitrix24: Developer resources > Other > Inbound webhook.",
                id="imbot_app.E011",
            )
        ]
    assert config is not None
    if len(config.client_id) < MIN_CLIENT_ID_LENGTH:
        messages.append(
            Warning(
                f"IMBOT_WEBHOOK_CLIENT_ID has {len(config.client_id)} characters: it is the only "
                "proof that an event comes from Bitrix24, so it must not be guessable.",
                hint=f"Use at least {MIN_CLIENT_ID_LENGTH} random characters: "
                "`manage.py imbot_register --generate-client-id`.",
                id="imbot_app.W010",
            )
        )
    if config.url.startswith("http://"):
        messages.append(
            Warning(
                "IMBOT_WEBHOOK_URL is plain http: the webhook's secret code travels in clear.",
                hint="Use the https:// URL Bitrix24 shows.",
                id="imbot_app.W011",
            )
        )
    return messages


MIN_ENCRYPTION_KEY_LENGTH = 32


@register(Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Sealed tokens need keys of their own: SECRET_KEY works, but then cannot rotate alone."""
    keys = imbot_settings.ENCRYPTION_KEYS
    if keys is None:
        if not show_configuration_warnings():  # true of every development setup: see check_scope
            return []
        return [
            Warning(
                "IMBOT_ENCRYPTION_KEYS is not set: the OAuth tokens at rest are sealed with a key "
                "derived from SECRET_KEY, so changing SECRET_KEY makes every stored token and "
                "application-token digest unreadable (portals must reinstall).",
                hint="Set IMBOT_ENCRYPTION_KEYS to a list holding SECRET_KEY first (it keeps what "
                "is sealed readable), then put a new random key in front and run "
                "`manage.py imbot_rotate_keys`.",
                id="imbot_app.W020",
            )
        ]
    if isinstance(keys, str) or not isinstance(keys, list | tuple) or not keys:
        return [
            Error(
                "IMBOT_ENCRYPTION_KEYS must be a non-empty list of strings, newest first.",
                id="imbot_app.E020",
            )
        ]
    weak = [
        i
        for i, k in enumerate(keys)
        if not isinstance(k, str) or len(k) < MIN_ENCRYPTION_KEY_LENGTH
    ]
    if weak:
        return [
            Error(
                f"IMBOT_ENCRYPTION_KEYS entries {weak} are not strings of at least "
                f"{MIN_ENCRYPTION_KEY_LENGTH} characters.",
                hint="Generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"',
                id="imbot_app.E021",
            )
        ]
    return []


@register()
def check_fetch_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Chatbots 2.0 fetch mode: the intervals Bitrix24 asks for, and Event.get's limit."""
    from django.core.exceptions import ImproperlyConfigured

    from imbot_app.protocol import fetch_schedule

    messages: list[CheckMessage] = []
    for read in (
        fetch_schedule.idle_interval,
        fetch_schedule.busy_interval,
        fetch_schedule.fetch_limit,
    ):
        try:
            read()
        except (ImproperlyConfigured, TypeError, ValueError) as exc:
            messages.append(Error(str(exc), id="imbot_app.E030"))
    return messages
