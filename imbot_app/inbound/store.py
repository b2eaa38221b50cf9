"""Persisting one authenticated event and the rows it implies, in one transaction.

The Event row goes in first, under a unique ``(portal, dedup_key)`` constraint: a second copy
of the same delivery fails that insert, the transaction rolls back, and the copy is answered as
a duplicate.  That holds for copies arriving at the same moment too, because the database, not
a prior SELECT, decides.

The rest is written with as few queries as the hot path allows: a message event for a portal,
bot and chat already known costs one query per table it touches, and rows are only updated when
a value really changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from imbot_app import events as ev
from imbot_app import sealing
from imbot_app.events import Envelope
from imbot_app.inbound.auth import Authenticated, AuthenticationFailed, InstallInfo, authenticate
from imbot_app.inbound.delivery import delivery_digest
from imbot_app.inbound.rows import bot_ids, store_rows
from imbot_app.models import (
    Event,
    Portal,
)
from imbot_app.outbound import authority

REDACTED = "[redacted]"
# Keys whose values are secrets wherever they appear in a payload.
SECRET_KEYS = frozenset({"access_token", "refresh_token", "application_token"})
# Top-level keys that are secrets (webhook-mode bots send their CLIENT_ID here).
SECRET_TOP_LEVEL_KEYS = frozenset({"CLIENT_ID"})


@dataclass(frozen=True, slots=True)
class StoreResult:
    event: Event
    duplicate: bool


def redact(payload: Any, *, top_level: bool = True) -> Any:
    """A copy of ``payload`` with every token value replaced by :data:`REDACTED`."""
    if isinstance(payload, dict):
        out = {}
        for key, value in payload.items():
            secret = key in SECRET_KEYS or (top_level and key in SECRET_TOP_LEVEL_KEYS)
            if secret and not isinstance(value, dict | list):
                out[key] = REDACTED if value not in ("", None) else value
            else:
                out[key] = redact(value, top_level=False)
        return out
    if isinstance(payload, list):
        return [redact(item, top_level=False) for item in payload]
    return payload


def payload_digest(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dedup_key(event: ev.BitrixEvent | None, name: str, redacted: Any, raw: Any = None) -> str:
    """What makes two deliveries "the same event".

    Message events: the message id; an edit also its delivery (``ts``) and new text, so A ->
    B -> A is three edits while a redelivered edit stays one.  Commands: command and message
    id, plus ``ts`` for keyboard and menu clicks, which repeat on the same message.  Anything
    else: a keyed digest of the raw payload, secrets included (:mod:`imbot_app.inbound.delivery`).
    """
    whole = delivery_digest(raw) if raw is not None else payload_digest(redacted)
    if isinstance(event, ev.MessageAdd | ev.MessageDelete):
        return f"{name}:{event.message.message_id}"
    if isinstance(event, ev.MessageUpdate):
        text = hashlib.sha256(event.message.text_original.encode("utf-8")).hexdigest()[:16]
        when = int(event.ts.timestamp()) if event.ts else whole[:16]
        return f"{name}:{event.message.message_id}:{when}:{text}"
    if isinstance(event, ev.CommandAdd):
        ids = ",".join(str(c.command_id) for c in event.commands)
        message_ids = ",".join(str(c.message_id) for c in event.commands)
        key = f"{name}:{ids}:{message_ids}"
        if any(c.context in ("KEYBOARD", "MENU") for c in event.commands):
            key += f":{int(event.ts.timestamp()) if event.ts else payload_digest(redacted)[:16]}"
        return key[:255]
    return f"{name}:{whole}"


def store_event(
    envelope: Envelope,
    event: ev.BitrixEvent | None,
    authenticated: Authenticated,
    remote_addr: str | None,
    *,
    invalid_reason: str = "",
    on_commit: Callable[[Event, ev.BitrixEvent | None], None] | None = None,
    dedup: Callable[[Envelope, ev.BitrixEvent | None, Any], str] | None = None,
) -> StoreResult:
    """Store the event and its rows, or find the copy stored before.

    ``event`` is ``None`` when the payload failed validation: the Event is then kept with
    status ``invalid`` and ``invalid_reason``, and no other row is touched.

    ``on_commit`` is called with the new Event and the typed event once the transaction has
    committed (never for a duplicate): the hook that starts handlers without this module
    knowing about them, and without their parsing the payload a second time.

    ``dedup`` computes the dedup key from (envelope, event, redacted payload) when the API
    version has its own rule (Chatbots 2.0: the fetch queue's ``eventId``, a bot per copy).
    """
    payload = redact(envelope.payload)
    if dedup is not None:
        key = dedup(envelope, event, payload)
    else:
        key = dedup_key(event, envelope.name, payload, envelope.payload)
    if authenticated.replay_only:
        # An uninstalled portal's redelivered ONAPPUNINSTALL: answered as the duplicate it is,
        # and nothing else is let through.
        existing = Event.objects.filter(portal=authenticated.portal, dedup_key=key).first()
        if existing is None:
            raise AuthenticationFailed(f"portal {envelope.auth.member_id} is uninstalled")
        return StoreResult(event=existing, duplicate=True)
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                portal = _apply_lifecycle(authenticated, envelope, event)
                record = Event.objects.create(
                    portal=portal,
                    name=envelope.name,
                    handler_id=envelope.handler_id,
                    ts=envelope.ts,
                    remote_addr=remote_addr,
                    payload=payload,
                    dedup_key=key,
                    status=Event.Status.INVALID if event is None else Event.Status.RECEIVED,
                    error=invalid_reason,
                )
                if event is not None:
                    store_rows(portal, event, record)
                if on_commit is not None:
                    transaction.on_commit(partial(on_commit, record, event))
            return StoreResult(event=record, duplicate=False)
        except IntegrityError:
            bot_ids.clear()
            # (The portal found by auth, when it was: a v2 delivery may name it by domain.)
            owner = (
                {"portal": authenticated.portal}
                if authenticated.portal is not None and authenticated.portal.pk
                else {"portal__member_id": envelope.auth.member_id}
            )
            existing = Event.objects.filter(dedup_key=key, **owner).first()
            if existing is not None:
                return StoreResult(event=existing, duplicate=True)
            if attempt == 2:
                raise
            if authenticated.portal is None and envelope.name == ev.APP_INSTALL:
                # Another request installed this new portal first: this install is judged
                # again, against the portal as that one stored it (raises if refused).
                authenticated = authenticate(envelope)
            # Another request created a chat, user or bot we were creating; try again now
            # that its rows are committed.
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- portal


def _apply_lifecycle(
    authenticated: Authenticated, envelope: Envelope, event: ev.BitrixEvent | None
) -> Portal:
    """Create or update the Portal as install, update and uninstall events say."""
    auth = envelope.auth
    portal = authenticated.portal
    verified = authenticated.verified
    now = timezone.now()
    if portal is not None and authenticated.bind_member_id:
        # Webhook mode: the portal was recorded before its member_id was known.
        portal.member_id = authenticated.bind_member_id
        portal.save(update_fields=["member_id", "updated_at"])
    if portal is not None and sealing.digest_is_stale(portal.application_token):
        _rekey_application_token(portal, auth.application_token)
    if isinstance(event, ev.AppInstall) or (portal is None and envelope.name == ev.APP_INSTALL):
        if portal is None:
            portal = Portal(member_id=auth.member_id)
        if verified is not None:
            _apply_verified(portal, verified, auth)
            if verified.user_id is not None:
                portal.installer_user_id = verified.user_id
        elif portal.pk is None or not portal.domain:
            # Trusted on first use (IMBOT_VERIFY_INSTALL off): the payload names the portal,
            # but never where its tokens go (see imbot_app.outbound.authority).
            portal.domain = auth.domain[:255]
            portal.client_endpoint = authority.portal_endpoint(auth.domain)[:255]
            portal.server_endpoint = (
                authority.allowed_oauth_server(auth.server_endpoint)
                or authority.default_oauth_server()
            )[:255]
        if verified is None:
            portal.installer_user_id = auth.user_id  # trusted on first use, as the rest is
        portal.application_token = auth.application_token
        portal.status = Portal.Status.INSTALLED
        portal.plan = auth.status[:4]
        if isinstance(event, ev.AppInstall):
            portal.language = event.language
            portal.app_version = event.version
        portal.installed_at = now
        portal.uninstalled_at = None
        portal.save()
        return portal
    if portal is None:  # authenticate() never lets this through
        raise AssertionError("an authenticated non-install event without a portal")
    if isinstance(event, ev.AppUpdate):
        if verified is not None:
            portal.application_token = auth.application_token
            _apply_verified(portal, verified, auth)
        portal.app_version = event.version or portal.app_version
        portal.language = event.language or portal.language
        portal.save()
    elif isinstance(event, ev.AppUninstall):
        portal.status = Portal.Status.UNINSTALLED
        portal.uninstalled_at = now
        # Bitrix24 deletes an application's bots, their commands and its event bindings with
        # it: a reinstall registers them anew (imbot_app.lifecycle.registration).
        portal.registered_at = None
        portal.bound_events = {}
        portal.save(
            update_fields=[
                "status",
                "uninstalled_at",
                "registered_at",
                "bound_events",
                "updated_at",
            ]
        )
        portal.credentials.all().delete()
        portal.commands.filter(deleted_at__isnull=True).update(deleted_at=now)
        portal.bots.filter(deleted_at__isnull=True).update(deleted_at=now)
    # Any other event leaves the portal's domain and endpoints alone: only a verified install
    # or update moves them (an application token is no licence to redirect the bot's tokens).
    return portal


def _rekey_application_token(portal: Portal, given: str) -> None:
    """Re-make a digest an older key made, from the token that matched it (after key rotation).

    A digest cannot be re-keyed without the token, so this is where it happens: once per
    portal after ``IMBOT_ENCRYPTION_KEYS`` gained a new key; never on the steady-state path.
    """
    if sealing.token_matches(portal.application_token, given):
        portal.application_token = given
        portal.save(update_fields=["application_token", "updated_at"])


def _apply_verified(portal: Portal, verified: InstallInfo, auth: ev.AuthBlock) -> None:
    """Domain and endpoints from app.info's answer (checked by auth.verify_install)."""
    portal.domain = (verified.domain or portal.domain)[:255]
    portal.client_endpoint = verified.client_endpoint[:255]
    portal.server_endpoint = (
        authority.allowed_oauth_server(auth.server_endpoint) or portal.server_endpoint
    )[:255]
