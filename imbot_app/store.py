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
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import events as ev
from .auth import Authenticated
from .models import (
    Bot,
    Chat,
    ChatUser,
    Command,
    CommandInvocation,
    Credential,
    Event,
    Message,
    Portal,
)
from .serializers import Envelope

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


def dedup_key(event: ev.BitrixEvent | None, name: str, redacted: Any) -> str:
    """What makes two deliveries "the same event".

    Message events: the message id (an edit also hashes its new text, so a second edit is not
    a duplicate of the first).  Commands: command and message id, plus ``ts`` for keyboard and
    menu clicks, which repeat on the same message.  Anything else: the redacted payload.
    """
    if isinstance(event, ev.MessageAdd | ev.MessageDelete):
        return f"{name}:{event.message.message_id}"
    if isinstance(event, ev.MessageUpdate):
        text = hashlib.sha256(event.message.text_original.encode("utf-8")).hexdigest()[:16]
        return f"{name}:{event.message.message_id}:{text}"
    if isinstance(event, ev.CommandAdd):
        ids = ",".join(str(c.command_id) for c in event.commands)
        message_ids = ",".join(str(c.message_id) for c in event.commands)
        key = f"{name}:{ids}:{message_ids}"
        if any(c.context in ("KEYBOARD", "MENU") for c in event.commands):
            key += f":{int(event.ts.timestamp()) if event.ts else payload_digest(redacted)[:16]}"
        return key[:255]
    return f"{name}:{payload_digest(redacted)}"


def store_event(
    envelope: Envelope,
    event: ev.BitrixEvent | None,
    authenticated: Authenticated,
    remote_addr: str | None,
    *,
    invalid_reason: str = "",
    on_commit: Callable[[Event, ev.BitrixEvent | None], None] | None = None,
    key: Callable[[Envelope, ev.BitrixEvent | None, Any], str] | None = None,
) -> StoreResult:
    """Store the event and its rows, or find the copy stored before.

    ``event`` is ``None`` when the payload failed validation: the Event is then kept with
    status ``invalid`` and ``invalid_reason``, and no other row is touched.

    ``on_commit`` is called with the new Event and the typed event once the transaction has
    committed (never for a duplicate): the hook that starts handlers without this module
    knowing about them, and without their parsing the payload a second time.

    ``key`` computes the dedup key from (envelope, event, redacted payload) when the API
    version has its own rule (Chatbots 2.0: ``protocol.v2.events.dedup_key``).
    """
    payload = redact(envelope.payload)
    dedup = (
        key(envelope, event, payload)
        if key is not None
        else dedup_key(event, envelope.name, payload)
    )
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
                    dedup_key=dedup,
                    status=Event.Status.INVALID if event is None else Event.Status.RECEIVED,
                    error=invalid_reason,
                )
                if event is not None:
                    _store_rows(portal, event, record)
                if on_commit is not None:
                    transaction.on_commit(partial(on_commit, record, event))
            return StoreResult(event=record, duplicate=False)
        except IntegrityError:
            bot_ids.clear()
            existing = Event.objects.filter(
                portal__member_id=envelope.auth.member_id, dedup_key=dedup
            ).first()
            if existing is not None:
                return StoreResult(event=existing, duplicate=True)
            if attempt == 2:
                raise
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
    if isinstance(event, ev.AppInstall) or (portal is None and envelope.name == ev.APP_INSTALL):
        if portal is None:
            portal = Portal(member_id=auth.member_id)
        portal.domain = (verified.domain if verified and verified.domain else auth.domain)[:255]
        portal.client_endpoint = (
            verified.client_endpoint
            if verified and verified.client_endpoint
            else auth.client_endpoint
        )[:255]
        portal.server_endpoint = auth.server_endpoint[:255]
        portal.application_token = auth.application_token
        portal.status = Portal.Status.INSTALLED
        portal.plan = auth.status[:4]
        portal.installer_user_id = auth.user_id
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
        portal.app_version = event.version or portal.app_version
        portal.language = event.language or portal.language
        portal.save()
    elif isinstance(event, ev.AppUninstall):
        portal.status = Portal.Status.UNINSTALLED
        portal.uninstalled_at = now
        # Bitrix24 deletes an application's bots, their commands and its event bindings with
        # it: a reinstall registers them anew (imbot_app.registration).
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
    else:
        _refresh_endpoints(portal, auth)
    return portal


def _refresh_endpoints(portal: Portal, auth: ev.AuthBlock) -> None:
    """Follow a portal that moved to a new domain; costs a query only when it did."""
    changed = []
    if auth.domain and auth.domain != portal.domain:
        portal.domain = auth.domain[:255]
        changed.append("domain")
    if auth.client_endpoint and auth.client_endpoint != portal.client_endpoint:
        portal.client_endpoint = auth.client_endpoint[:255]
        changed.append("client_endpoint")
    if changed:
        portal.save(update_fields=[*changed, "updated_at"])


# --------------------------------------------------------------------------- rows


def _store_rows(portal: Portal, event: ev.BitrixEvent, record: Event) -> None:
    if not isinstance(event, ev.AppUninstall):
        _upsert_credentials(portal, event.token_blocks)
    if isinstance(event, ev.BotDelete):
        _delete_bot(portal, event)
        return
    if not isinstance(event, ev._ChatEvent):
        return
    bots = _sync_bots(portal, event.bots)
    primary_bot = next(iter(bots.values()), None)
    if isinstance(event, ev.BotJoinChat) and event.bot_id in bots:
        primary_bot = bots[event.bot_id]
    chat = _sync_chat(portal, event.chat, primary_bot)
    author_id = event.message.author_id if isinstance(event, _MESSAGE_EVENTS) else None
    if isinstance(event, ev.CommandAdd) and event.message is not None:
        author_id = event.message.author_id
    user = _sync_user(portal, event.user, author_id)
    if isinstance(event, _MESSAGE_EVENTS):
        _upsert_message(portal, event, chat, user, primary_bot, record)
    elif isinstance(event, ev.CommandAdd):
        if event.message is not None:
            _upsert_message(portal, event, chat, user, primary_bot, record)
        _store_invocations(portal, event, bots, chat, user, record)


_MESSAGE_EVENTS = (ev.MessageAdd, ev.MessageUpdate, ev.MessageDelete)


def _upsert_credentials(portal: Portal, blocks: Iterable[ev.AuthBlock]) -> None:
    """One token set per user; a block without a refresh token keeps the stored one."""
    with_refresh: dict[int, Credential] = {}
    without_refresh: dict[int, Credential] = {}
    for block in blocks:
        if block.user_id is None or not block.access_token:
            continue
        credential = Credential(
            portal=portal,
            user_id=block.user_id,
            access_token=block.access_token[:255],
            refresh_token=block.refresh_token[:255],
            expires_at=block.expires,
            scope=block.scope[:1024],
        )
        target = with_refresh if block.refresh_token else without_refresh
        target[block.user_id] = credential
    for user_id in with_refresh:
        without_refresh.pop(user_id, None)
    common = ["access_token", "expires_at", "scope", "updated_at"]
    for rows, fields in (
        (with_refresh, [*common, "refresh_token"]),
        (without_refresh, common),
    ):
        if rows:
            Credential.objects.bulk_create(
                list(rows.values()),
                update_conflicts=True,
                unique_fields=["portal", "user_id"],
                update_fields=fields,
            )


Row = TypeVar("Row", Bot, Command)


def _rows_by_id(
    model: type[Row],
    portal: Portal,
    id_field: str,
    ids: Iterable[int],
    build: Callable[[int], Row],
) -> dict[int, Row]:
    """The portal's rows with these Bitrix24 ids, the missing ones created in one insert."""
    wanted = list(ids)
    rows = model.objects.filter(portal=portal, **{f"{id_field}__in": wanted})
    found: dict[int, Row] = {getattr(row, id_field): row for row in rows}
    missing = [build(i) for i in wanted if i not in found]
    if missing:
        for row in model.objects.bulk_create(missing):
            found[getattr(row, id_field)] = row
    return found


class _BotIds:
    """Process-local map of (portal pk, Bitrix24 bot id) to (Bot pk, code).

    A bot's identity row never changes once created, and every message names its bot, so this
    saves a query per event on the hot path.  Rows are remembered only once their transaction
    has committed (a rolled-back id may be handed out again).  A stale entry (a Bot row deleted
    by hand) makes the transaction fail on its foreign key; :func:`store_event` then clears the
    map and tries again.  Bounded so a process serving many portals stays small.
    """

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], tuple[int, str]] = {}
        self._lock = threading.Lock()

    def get(self, portal: Portal, bot_id: int) -> Bot | None:
        entry = self._entries.get((portal.pk, bot_id))
        if entry is None:
            return None
        return Bot(pk=entry[0], portal=portal, bot_id=bot_id, code=entry[1])

    def remember(self, bot: Bot) -> None:
        """Remember ``bot`` once the current transaction commits."""
        transaction.on_commit(partial(self._put, bot.portal_id, bot.bot_id, bot.pk, bot.code))

    def _put(self, portal_pk: int, bot_id: int, pk: int, code: str) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[(portal_pk, bot_id)] = (pk, code)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


bot_ids = _BotIds()


def _sync_bots(portal: Portal, refs: Iterable[ev.BotRef]) -> dict[int, Bot]:
    wanted = {ref.bot_id: ref for ref in refs}
    if not wanted:
        return {}
    cached = {bot_id: bot_ids.get(portal, bot_id) for bot_id in wanted}
    if all(
        bot is not None and (not wanted[bot_id].code or bot.code == wanted[bot_id].code)
        for bot_id, bot in cached.items()
    ):
        return {bot_id: bot for bot_id, bot in cached.items() if bot is not None}
    found = _rows_by_id(
        Bot,
        portal,
        "bot_id",
        wanted,
        lambda bot_id: Bot(portal=portal, bot_id=bot_id, code=wanted[bot_id].code[:255]),
    )
    for bot_id, ref in wanted.items():
        bot = found[bot_id]
        if ref.code and bot.code != ref.code:
            bot.code = ref.code[:255]
            bot.save(update_fields=["code"])
        bot_ids.remember(bot)
    return {bot_id: found[bot_id] for bot_id in wanted}


def _delete_bot(portal: Portal, event: ev.BotDelete) -> None:
    bot = _sync_bots(portal, [ev.BotRef(event.bot_id, event.bot_code, None)])[event.bot_id]
    bot.deleted_at = timezone.now()
    bot.save(update_fields=["deleted_at"])


def _changed(instance: Any, values: dict[str, Any]) -> list[str]:
    """Set the given non-empty values that differ; return the names of the fields set."""
    changed = []
    for field, value in values.items():
        if value not in ("", None) and getattr(instance, field) != value:
            setattr(instance, field, value)
            changed.append(field)
    return changed


def _sync_chat(portal: Portal, info: ev.ChatInfo, bot: Bot | None) -> Chat:
    owner = bot if info.is_private else None
    values = {
        "type": info.type[:2],
        "chat_id": info.chat_id,
        "title": info.title[:255],
        "entity_type": info.entity_type[:64],
        "entity_id": info.entity_id[:255],
        "user_count": info.user_count,
    }
    chat = Chat.objects.filter(portal=portal, dialog_id=info.dialog_id, bot=owner).first()
    if chat is None:
        return Chat.objects.create(
            portal=portal,
            dialog_id=info.dialog_id,
            bot=owner,
            **{k: v for k, v in values.items() if v not in ("", None)},
        )
    changed = _changed(chat, values)
    if changed:
        chat.save(update_fields=[*changed, "updated_at"])
    return chat


def _sync_user(portal: Portal, info: ev.UserInfo | None, author_id: int | None) -> ChatUser | None:
    user_id = info.id if info is not None else author_id
    if not user_id:
        return None
    user = ChatUser.objects.filter(portal=portal, user_id=user_id).first()
    if info is None:
        return user or ChatUser.objects.create(portal=portal, user_id=user_id)
    values = {
        "name": info.name[:255],
        "first_name": info.first_name[:255],
        "last_name": info.last_name[:255],
        "work_position": info.work_position[:255],
        "gender": info.gender[:1],
    }
    flags = {
        "is_bot": info.is_bot,
        "is_extranet": info.is_extranet,
        "is_connector": info.is_connector,
        "is_network": info.is_network,
    }
    if user is None:
        return ChatUser.objects.create(portal=portal, user_id=user_id, **values, **flags)
    changed = _changed(user, values)
    for field, flag in flags.items():
        if getattr(user, field) != flag:
            setattr(user, field, flag)
            changed.append(field)
    if changed:
        user.save(update_fields=[*changed, "updated_at"])
    return user


def _upsert_message(
    portal: Portal,
    event: ev.MessageAdd | ev.MessageUpdate | ev.MessageDelete | ev.CommandAdd,
    chat: Chat,
    user: ChatUser | None,
    bot: Bot | None,
    record: Event,
) -> None:
    """Insert the message, or update the copy a related event stored before, in one query."""
    info = event.message
    assert info is not None
    now = timezone.now()
    message = Message(
        portal=portal,
        chat=chat,
        bot=bot,
        author=user,
        event=record,
        message_id=info.message_id,
        direction=Message.Direction.IN,
        text=info.text,
        text_original=info.text_original,
    )
    update_fields: list[str]
    if isinstance(event, ev.MessageUpdate):
        message.edited_at = now
        update_fields = ["text", "text_original", "edited_at"]
    elif isinstance(event, ev.MessageDelete):
        message.deleted_at = now
        update_fields = ["deleted_at"]
    else:
        update_fields = ["text", "text_original", "chat", "author"]
    Message.objects.bulk_create(
        [message],
        update_conflicts=True,
        unique_fields=["portal", "message_id"],
        update_fields=update_fields,
    )


def _store_invocations(
    portal: Portal,
    event: ev.CommandAdd,
    bots: dict[int, Bot],
    chat: Chat,
    user: ChatUser | None,
    record: Event,
) -> None:
    wanted = {ref.command_id: ref for ref in event.commands}

    def new_command(command_id: int) -> Command:
        ref = wanted[command_id]
        bot = bots.get(ref.bot_id) if ref.bot_id is not None else None
        return Command(portal=portal, command_id=command_id, command=ref.command[:255], bot=bot)

    found = _rows_by_id(Command, portal, "command_id", wanted, new_command)
    for command_id, ref in wanted.items():
        command = found[command_id]
        bot = bots.get(ref.bot_id) if ref.bot_id is not None else None
        changed = _changed(command, {"command": ref.command[:255]})
        if bot is not None and command.bot_id != bot.pk:
            command.bot = bot
            changed.append("bot")
        if changed:
            command.save(update_fields=changed)
    CommandInvocation.objects.bulk_create(
        CommandInvocation(
            event=record,
            command=found[ref.command_id],
            chat=chat,
            user=user,
            message_id=ref.message_id,
            params=ref.params,
            context=ref.context[:16],
        )
        for ref in event.commands
    )
