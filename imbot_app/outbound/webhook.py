"""Webhook mode: one portal reached through an inbound webhook, without an OAuth application.

Teams running an in-house bot on their own portal create an inbound webhook
(``https://example.bitrix24.com/rest/1/abcd1234efgh5678/``) and register the bot through it with
a CLIENT_ID of their choosing.  Bitrix24 then sends that bot's events with the CLIENT_ID (as a
top-level ``CLIENT_ID`` and as ``auth[application_token]``) and no OAuth tokens at all.

Both values are secrets and live only in settings (``IMBOT_WEBHOOK_URL``,
``IMBOT_WEBHOOK_CLIENT_ID``): the URL is never stored, logged or shown.  The portal is a
:class:`~imbot_app.models.Portal` with ``webhook=True``; until its first event tells its
``member_id``, it is recorded under a placeholder derived from the webhook's domain.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import string
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from imbot_app.conf import imbot_settings
from imbot_app.models import Portal

logger = logging.getLogger("imbot_app.webhook")

MIN_CLIENT_ID_LENGTH = 32
PENDING_PREFIX = "webhook:"


class WebhookUrlError(ValueError):
    """IMBOT_WEBHOOK_URL is not an inbound webhook URL."""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """The configured webhook: where to call and which CLIENT_ID proves an event is ours."""

    url: str = field(repr=False)
    domain: str
    user_id: int
    client_id: str = field(repr=False)

    @property
    def pending_member_id(self) -> str:
        """The placeholder ``member_id`` of the portal before its first event."""
        return PENDING_PREFIX + hashlib.sha256(self.domain.encode()).hexdigest()[:48]


def parse_webhook_url(url: str) -> tuple[str, str, int]:
    """``(url with a trailing slash, domain, user id)`` of an inbound webhook URL."""
    parts = urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookUrlError("it must be an http(s) URL")
    if len(segments) != 3 or segments[0] != "rest" or not segments[1].isdigit() or not segments[2]:
        raise WebhookUrlError("it must look like https://<portal>/rest/<user id>/<code>/")
    base = f"{parts.scheme}://{parts.netloc}/rest/{segments[1]}/{segments[2]}/"
    return base, parts.hostname.lower(), int(segments[1])


def webhook_config(*, strict: bool = False) -> WebhookConfig | None:
    """The webhook settings, or ``None`` when webhook mode is not (fully) configured.

    A malformed ``IMBOT_WEBHOOK_URL`` raises :class:`WebhookUrlError` when ``strict`` (system
    checks, ``imbot_register``); elsewhere it is logged and webhook mode stays off, so a typo
    cannot turn every event into a server error.
    """
    url = imbot_settings.WEBHOOK_URL
    client_id = imbot_settings.WEBHOOK_CLIENT_ID
    if not url or not client_id:
        return None
    try:
        base, domain, user_id = parse_webhook_url(str(url))
    except WebhookUrlError as exc:
        if strict:
            raise
        logger.error(
            "IMBOT_WEBHOOK_URL is not an inbound webhook URL (%s): webhook mode is off", exc
        )
        return None
    return WebhookConfig(url=base, domain=domain, user_id=user_id, client_id=str(client_id))


def generate_client_id(length: int = 40) -> str:
    """A random CLIENT_ID: letters and digits, as Bitrix24 accepts."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def ensure_portal(config: WebhookConfig) -> Portal:
    """The webhook's portal, recorded (under a placeholder member_id) if it is not yet."""
    portal = Portal.objects.filter(webhook=True, domain=config.domain).first()
    if portal is not None:
        return portal
    try:
        with transaction.atomic():
            return Portal.objects.create(
                member_id=config.pending_member_id,
                webhook=True,
                domain=config.domain,
                status=Portal.Status.INSTALLED,
            )
    except IntegrityError:
        return Portal.objects.get(member_id=config.pending_member_id)


def is_pending(portal: Portal) -> bool:
    """The portal has not told its member_id yet (no event arrived since it was recorded)."""
    return portal.member_id.startswith(PENDING_PREFIX)
