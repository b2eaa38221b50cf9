"""DRF serializers that turn a decoded body into typed events, with field-level errors.

Two steps, because authentication sits between them: :func:`parse_envelope` checks the parts
every event shares (``event``, ``event_handler_id``, ``ts``, ``auth``, ``data``) so the endpoint
can find the portal; :func:`parse_event` then checks ``data`` against what the reference page of
that event defines and builds the typed event.  Unknown keys are ignored here (they stay in
the stored payload); unknown events become :class:`~imbot_app.events.GenericEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from imbot_app import events as ev
from imbot_app.errors import InvalidPayload
from imbot_app.events import Envelope
from imbot_app.protocol.fields import auth_block, int_key, timestamp
from imbot_app.protocol.v1.serializers import (
    AppInstallDataSerializer,
    AppUninstallDataSerializer,
    AppUpdateDataSerializer,
    BotDeleteDataSerializer,
    CommandDataSerializer,
    EnvelopeSerializer,
    JoinDataSerializer,
    MessageDataSerializer,
    MessageDeleteDataSerializer,
    TokenEntrySerializer,
)
from imbot_app.protocol.validation import Builder, build_event, validate

# --------------------------------------------------------------------------- reuse


def parse_envelope(payload: dict[str, Any]) -> Envelope:
    """Validate the shared envelope; raises :class:`InvalidPayload` with field errors."""
    values = validate(EnvelopeSerializer, payload)
    return Envelope(
        name=values["event"].strip().upper(),
        handler_id=values.get("event_handler_id"),
        ts=timestamp(values.get("ts")),
        auth=auth_block(values.get("auth") or {}),
        data=payload.get("data") or {},
        payload=payload,
    )


# --------------------------------------------------------------------------- builders


def _envelope_fields(env: Envelope) -> dict[str, Any]:
    """The fields every typed event takes from its envelope."""
    return {"name": env.name, "handler_id": env.handler_id, "ts": env.ts, "auth": env.auth}


def _user(values: Mapping[str, Any] | None) -> ev.UserInfo | None:
    if not values or not values.get("ID"):
        return None
    return ev.UserInfo(
        id=values["ID"],
        name=values.get("NAME", ""),
        first_name=values.get("FIRST_NAME", ""),
        last_name=values.get("LAST_NAME", ""),
        work_position=values.get("WORK_POSITION", ""),
        gender=values.get("GENDER", ""),
        is_bot=bool(values.get("IS_BOT")),
        is_connector=bool(values.get("IS_CONNECTOR")),
        is_network=bool(values.get("IS_NETWORK")),
        is_extranet=bool(values.get("IS_EXTRANET")),
    )


def _bots(values: Mapping[str, Any]) -> tuple[ev.BotRef, ...]:
    refs = []
    for key, bot in (values.get("BOT") or {}).items():
        bot_id = bot.get("BOT_ID")
        if bot_id is None:
            bot_id = int_key(key)
            if bot_id is None:
                continue
        refs.append(
            ev.BotRef(
                bot_id=bot_id,
                code=bot.get("BOT_CODE", ""),
                auth=TokenEntrySerializer.entry_auth(bot),
            )
        )
    return tuple(refs)


def _chat(params: Mapping[str, Any]) -> ev.ChatInfo:
    return ev.ChatInfo(
        dialog_id=params["DIALOG_ID"],
        type=params.get("CHAT_TYPE") or params.get("MESSAGE_TYPE", ""),
        chat_id=params.get("CHAT_ID") or params.get("TO_CHAT_ID"),
        title=params.get("CHAT_TITLE", ""),
        entity_type=params.get("CHAT_ENTITY_TYPE", ""),
        entity_id=params.get("CHAT_ENTITY_ID", ""),
        user_count=params.get("CHAT_USER_COUNT"),
    )


def _mentions(raw: Mapping[str, Any]) -> tuple[int, ...]:
    ids = []
    for key in raw:
        try:
            ids.append(int(key))
        except ValueError:
            continue
    return tuple(ids)


def _message(params: Mapping[str, Any]) -> ev.MessageInfo:
    text = params.get("MESSAGE", "")
    message_id = params.get("MESSAGE_ID")
    return ev.MessageInfo(
        message_id=params["ID"] if message_id is None else message_id,
        author_id=params.get("AUTHOR_ID") or params.get("FROM_USER_ID"),
        text=text,
        text_original=params.get("MESSAGE_ORIGINAL", text),
        to_user_id=params.get("TO_USER_ID"),
        language=params.get("LANGUAGE", ""),
        mentions=_mentions(params.get("MENTIONED_LIST") or {}),
        files=dict(params.get("FILES") or {}),
        is_system=bool(params.get("SYSTEM")),
    )


def _message_event(cls: type[ev.MessageAdd | ev.MessageUpdate | ev.MessageDelete]) -> Builder:
    def build(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
        params = values["PARAMS"]
        return cls(
            **_envelope_fields(env),
            bot_refs=_bots(values),
            chat=_chat(params),
            user=_user(values.get("USER")),
            message=_message(params),
        )

    return build


def _command_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    commands = []
    bots: dict[int, ev.BotRef] = {}
    params = values["PARAMS"]
    for key, item in values["COMMAND"].items():
        command_id = item.get("COMMAND_ID")
        if command_id is None:
            command_id = int_key(key)
            if command_id is None:
                raise InvalidPayload(
                    {"COMMAND": {key: {"COMMAND_ID": ["A valid integer is required."]}}}
                )
        auth = TokenEntrySerializer.entry_auth(item)
        bot_id = item.get("BOT_ID")
        commands.append(
            ev.CommandRef(
                command_id=command_id,
                command=item["COMMAND"],
                params=item.get("COMMAND_PARAMS", ""),
                context=item.get("COMMAND_CONTEXT", ""),
                message_id=item.get("MESSAGE_ID", params.get("MESSAGE_ID")),
                bot_id=bot_id,
                bot_code=item.get("BOT_CODE", ""),
                auth=auth,
            )
        )
        if bot_id is not None and bot_id not in bots:
            bots[bot_id] = ev.BotRef(bot_id=bot_id, code=item.get("BOT_CODE", ""), auth=auth)
    return ev.CommandAdd(
        **_envelope_fields(env),
        bot_refs=tuple(bots.values()),
        chat=_chat(params),
        user=_user(values.get("USER")),
        commands=tuple(commands),
        message=_message(params),
    )


def _join_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    params = values["PARAMS"]
    bot_refs = _bots(values)
    bot_id = params.get("BOT_ID")
    if bot_id is not None and all(b.bot_id != bot_id for b in bot_refs):
        bot_refs = (*bot_refs, ev.BotRef(bot_id=bot_id, code="", auth=None))
    return ev.BotJoinChat(
        **_envelope_fields(env),
        bot_refs=bot_refs,
        chat=_chat(params),
        user=_user(values.get("USER")),
        bot_id=bot_id if bot_id is not None else (bot_refs[0].bot_id if bot_refs else None),
        access_history=params.get("ACCESS_HISTORY"),
    )


def _bot_delete_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.BotDelete(
        **_envelope_fields(env),
        bot_id=values["BOT_ID"],
        bot_code=values.get("BOT_CODE", ""),
    )


def _install_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.AppInstall(
        **_envelope_fields(env),
        version=values.get("VERSION", ""),
        active=values.get("ACTIVE"),
        installed=values.get("INSTALLED"),
        language=values.get("LANGUAGE_ID", ""),
    )


def _update_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.AppUpdate(
        **_envelope_fields(env),
        version=values.get("VERSION", ""),
        previous_version=values.get("PREVIOUS_VERSION", ""),
        language=values.get("LANGUAGE_ID", ""),
    )


def _uninstall_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.AppUninstall(
        **_envelope_fields(env),
        language=values.get("LANGUAGE_ID", ""),
        clean=bool(values.get("CLEAN")),
    )


_BUILDERS: dict[str, tuple[type[serializers.Serializer], Builder]] = {
    ev.MESSAGE_ADD: (MessageDataSerializer, _message_event(ev.MessageAdd)),
    ev.MESSAGE_UPDATE: (MessageDataSerializer, _message_event(ev.MessageUpdate)),
    ev.MESSAGE_DELETE: (MessageDeleteDataSerializer, _message_event(ev.MessageDelete)),
    ev.COMMAND_ADD: (CommandDataSerializer, _command_event),
    ev.BOT_JOIN_CHAT: (JoinDataSerializer, _join_event),
    ev.BOT_DELETE: (BotDeleteDataSerializer, _bot_delete_event),
    ev.APP_INSTALL: (AppInstallDataSerializer, _install_event),
    ev.APP_UPDATE: (AppUpdateDataSerializer, _update_event),
    ev.APP_UNINSTALL: (AppUninstallDataSerializer, _uninstall_event),
}

KNOWN_EVENTS = frozenset(_BUILDERS)


def parse_event(envelope: Envelope) -> ev.BitrixEvent:
    """Validate ``data`` for the envelope's event and build the typed event.

    Raises :class:`InvalidPayload` with DRF's field errors, nested under ``data``.
    """
    return build_event(envelope, _BUILDERS)
