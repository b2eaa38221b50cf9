"""DRF serializers that turn a decoded body into typed events, with field-level errors.

Two steps, because authentication sits between them: :func:`parse_envelope` checks the parts
every event shares (``event``, ``event_handler_id``, ``ts``, ``auth``, ``data``) so the endpoint
can find the portal; :func:`parse_event` then checks ``data`` against what the reference page of
that event defines and builds the typed event.  Unknown keys are ignored here (they stay in
the stored payload); unknown events become :class:`~imbot_app.events.GenericEvent`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from . import events as ev


class InvalidPayload(Exception):
    """The body decoded but does not hold a valid event; ``errors`` says which fields."""

    def __init__(self, errors: Any) -> None:
        super().__init__("invalid event payload")
        self.errors = errors


# --------------------------------------------------------------------------- fields


def _text(**kwargs: Any) -> serializers.CharField:
    """A string kept exactly as sent: no trimming, blank allowed, optional."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    return serializers.CharField(trim_whitespace=False, **kwargs)


# Ids are stored in 64-bit columns: a larger number is invalid input, not a database error.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _int(**kwargs: Any) -> serializers.IntegerField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("min_value", INT64_MIN)
    kwargs.setdefault("max_value", INT64_MAX)
    return serializers.IntegerField(**kwargs)


def _int_key(key: str) -> int | None:
    """A mapping key that names an id (``data[BOT][<id>]``), or ``None`` if it cannot."""
    try:
        value = int(key)
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def _flag(**kwargs: Any) -> serializers.BooleanField:
    """Bitrix24's Y/N flags (DRF reads Y/N, 1/0 and true/false)."""
    kwargs.setdefault("required", False)
    return serializers.BooleanField(**kwargs)


class LenientIntegerField(serializers.Field):
    """An integer that may be missing or unreadable (``ts``/``expires`` masked in real logs).

    An unreadable value becomes ``None`` rather than an error: the raw value stays in the
    stored payload, and refusing a real message because of a timestamp would lose it.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int | None:
        return _lenient_int(data)

    def to_representation(self, value: Any) -> Any:
        return value


def _lenient_int(data: Any) -> int | None:
    if data is None or isinstance(data, bool):
        return None
    try:
        value = int(str(data).strip())
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


class MappingField(serializers.DictField):
    """A nested mapping (PHP array); empty when absent, as PHP drops empty arrays."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


# --------------------------------------------------------------------------- blocks

# The text keys of an auth block and their longest allowed values.
_AUTH_TEXT: dict[str, int] = {
    "member_id": 64,
    "application_token": 255,
    "domain": 255,
    "client_endpoint": 255,
    "server_endpoint": 255,
    "access_token": 255,
    "refresh_token": 255,
    "scope": 1024,
    "status": 4,
    "client_id": 255,
}


def clean_auth(data: Any) -> dict[str, Any]:
    """Check an auth block's keys (all optional; unknown ones ignored) and return them.

    A plain function rather than a nested serializer: an event carries up to four auth blocks
    (the user's, and each bot's with its AUTH copy), and DRF would deep-copy twelve fields for
    each on every request.
    """
    if not isinstance(data, Mapping):
        raise serializers.ValidationError(
            f'Expected a dictionary of items but got type "{type(data).__name__}".'
        )
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, limit in _AUTH_TEXT.items():
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors[key] = ["Not a valid string."]
        elif len(text := str(value)) > limit:
            errors[key] = [f"Ensure this field has no more than {limit} characters."]
        else:
            values[key] = text
    if errors:
        raise serializers.ValidationError(errors)
    values["user_id"] = _lenient_int(data.get("user_id"))
    values["expires"] = _lenient_int(data.get("expires"))
    return values


class AuthField(serializers.Field):
    """An ``auth`` block, checked by :func:`clean_auth`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return clean_auth(data)

    def to_representation(self, value: Any) -> Any:
        return value


def _timestamp(value: int | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _auth_block(values: Mapping[str, Any]) -> ev.AuthBlock:
    return ev.AuthBlock(
        **{key: values.get(key, "") for key in _AUTH_TEXT},
        user_id=values.get("user_id"),
        expires=_timestamp(values.get("expires")),
    )


class _TokenEntrySerializer(serializers.Serializer):
    """A ``data[BOT][id]`` or ``data[COMMAND][id]`` entry: auth keys beside an AUTH copy."""

    AUTH = AuthField()

    def to_internal_value(self, data: Any) -> Any:
        values = super().to_internal_value(data)
        try:
            values["auth_keys"] = clean_auth(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(exc.detail) from None
        return values

    @staticmethod
    def entry_auth(values: Mapping[str, Any]) -> ev.AuthBlock | None:
        merged = dict(values.get("AUTH") or {})
        own = values.get("auth_keys") or {}
        merged.update({k: v for k, v in own.items() if v not in ("", None)})
        if not any(merged.get(k) for k in ("member_id", "application_token", "access_token")):
            return None
        return _auth_block(merged)


class BotEntrySerializer(_TokenEntrySerializer):
    BOT_ID = _int()
    BOT_CODE = _text(max_length=255)


class CommandEntrySerializer(_TokenEntrySerializer):
    COMMAND = serializers.CharField(max_length=255)
    COMMAND_ID = _int()
    COMMAND_PARAMS = _text()
    COMMAND_CONTEXT = _text(max_length=16)
    MESSAGE_ID = _int()
    BOT_ID = _int()
    BOT_CODE = _text(max_length=255)


class UserSerializer(serializers.Serializer):
    """``data[USER]``; the reduced command variant has only ID, names and gender."""

    ID = _int(required=True)
    NAME = _text(max_length=255)
    FIRST_NAME = _text(max_length=255)
    LAST_NAME = _text(max_length=255)
    WORK_POSITION = _text(max_length=255)
    GENDER = _text(max_length=1)
    IS_BOT = _flag()
    IS_CONNECTOR = _flag()
    IS_NETWORK = _flag()
    IS_EXTRANET = _flag()


class ChatParamsSerializer(serializers.Serializer):
    """The chat part of ``data[PARAMS]``; CHAT_* keys are absent in private chats."""

    DIALOG_ID = serializers.CharField(max_length=64)
    CHAT_TYPE = _text(max_length=2)
    MESSAGE_TYPE = _text(max_length=2)
    CHAT_ID = _int()
    TO_CHAT_ID = _int()
    CHAT_TITLE = _text(max_length=255)
    CHAT_ENTITY_TYPE = _text(max_length=64)
    CHAT_ENTITY_ID = _text(max_length=255)
    CHAT_USER_COUNT = _int(min_value=0, max_value=2**31 - 1)
    LANGUAGE = _text(max_length=10)


class MessageParamsSerializer(ChatParamsSerializer):
    """``data[PARAMS]`` of the message events (ONIMBOTMESSAGE*, ONIMCOMMANDADD)."""

    MESSAGE_ID = _int()
    ID = _int()
    MESSAGE = _text()
    MESSAGE_ORIGINAL = _text()
    FROM_USER_ID = _int()
    AUTHOR_ID = _int()
    TO_USER_ID = _int()
    SYSTEM = _flag()
    MENTIONED_LIST = MappingField()
    FILES = MappingField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("MESSAGE_ID") is None and attrs.get("ID") is None:
            raise serializers.ValidationError({"MESSAGE_ID": ["This field is required."]})
        return attrs


class JoinParamsSerializer(ChatParamsSerializer):
    """``data[PARAMS]`` of ONIMBOTJOINCHAT."""

    BOT_ID = _int()
    USER_ID = _int()
    FROM_USER_ID = _int()
    TO_USER_ID = _int()
    CHAT_AUTHOR_ID = _int()
    ACCESS_HISTORY = _flag()


# --------------------------------------------------------------------------- data per event


class _ChatDataSerializer(serializers.Serializer):
    BOT = serializers.DictField(child=BotEntrySerializer(), required=False)
    USER = UserSerializer(required=False)


class MessageDataSerializer(_ChatDataSerializer):
    PARAMS = MessageParamsSerializer()


class MessageDeleteDataSerializer(MessageDataSerializer):
    """The group example of ONIMBOTMESSAGEDELETE has no USER block; neither do we require it."""


class CommandDataSerializer(serializers.Serializer):
    COMMAND = serializers.DictField(child=CommandEntrySerializer(), allow_empty=False)
    PARAMS = MessageParamsSerializer()
    USER = UserSerializer(required=False)


class JoinDataSerializer(_ChatDataSerializer):
    PARAMS = JoinParamsSerializer()


class BotDeleteDataSerializer(serializers.Serializer):
    BOT_ID = _int(required=True)
    BOT_CODE = _text(max_length=255)


class AppInstallDataSerializer(serializers.Serializer):
    VERSION = _text(max_length=20)
    ACTIVE = _flag()
    INSTALLED = _flag()
    LANGUAGE_ID = _text(max_length=10)


class AppUpdateDataSerializer(serializers.Serializer):
    VERSION = _text(max_length=20)
    PREVIOUS_VERSION = _text(max_length=20)
    LANGUAGE_ID = _text(max_length=10)


class AppUninstallDataSerializer(serializers.Serializer):
    LANGUAGE_ID = _text(max_length=10)
    CLEAN = _flag()


# --------------------------------------------------------------------------- envelope


class EnvelopeSerializer(serializers.Serializer):
    """What every Bitrix24 event carries."""

    event = serializers.CharField(max_length=64)
    event_handler_id = _int(allow_null=True)
    ts = LenientIntegerField()
    auth = AuthField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # A field called "data" cannot be declared on the class: it would hide Serializer.data.
        fields = super().get_fields()
        fields["data"] = MappingField(allow_empty=True)
        return fields


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated envelope: enough to authenticate before ``data`` is looked at."""

    name: str
    handler_id: int | None
    ts: datetime | None
    auth: ev.AuthBlock
    data: dict[str, Any]
    payload: dict[str, Any]

    @property
    def is_known(self) -> bool:
        return self.name in _BUILDERS


# --------------------------------------------------------------------------- reuse


class _IdleSerializers(threading.local):
    """Per thread: the serializers not in use, by class."""

    def __init__(self) -> None:
        self.by_class: dict[type[serializers.Serializer], list[serializers.Serializer]] = {}


_idle = _IdleSerializers()


def _validate(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """``serializer_class(data=data)``'s validated data; raises :class:`InvalidPayload`.

    Building a serializer deep-copies every declared field, nested ones included: most of
    what a parse costs, paid again for every event a replay rebuilds.  Validating keeps no
    state in a serializer but ``initial_data``, ``_validated_data`` and ``_errors``, so an
    instance is reused once those are cleared.  Idle instances are kept per thread (fields
    are not safe to share between threads) and taken out while in use (a validation that
    parsed another payload would get its own); one that found errors is dropped, as its
    ``errors`` live on in the exception.
    """
    idle = _idle.by_class.setdefault(serializer_class, [])
    serializer = idle.pop() if idle else serializer_class()
    serializer.initial_data = data
    if not serializer.is_valid():
        raise InvalidPayload(serializer.errors)
    values = dict(serializer.validated_data)
    for attribute in ("initial_data", "_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(attribute, None)
    idle.append(serializer)
    return values


def parse_envelope(payload: dict[str, Any]) -> Envelope:
    """Validate the shared envelope; raises :class:`InvalidPayload` with field errors."""
    values = _validate(EnvelopeSerializer, payload)
    return Envelope(
        name=values["event"].strip().upper(),
        handler_id=values.get("event_handler_id"),
        ts=_timestamp(values.get("ts")),
        auth=_auth_block(values.get("auth") or {}),
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
            bot_id = _int_key(key)
            if bot_id is None:
                continue
        refs.append(
            ev.BotRef(
                bot_id=bot_id,
                code=bot.get("BOT_CODE", ""),
                auth=_TokenEntrySerializer.entry_auth(bot),
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
            command_id = _int_key(key)
            if command_id is None:
                raise InvalidPayload(
                    {"COMMAND": {key: {"COMMAND_ID": ["A valid integer is required."]}}}
                )
        auth = _TokenEntrySerializer.entry_auth(item)
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


Builder = Callable[[Envelope, dict[str, Any]], ev.BitrixEvent]

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
    spec = _BUILDERS.get(envelope.name)
    if spec is None:
        return ev.GenericEvent(
            **_envelope_fields(envelope),
            data=envelope.data,
        )
    serializer_class, build = spec
    try:
        values = _validate(serializer_class, envelope.data)
    except InvalidPayload as exc:
        raise InvalidPayload({"data": exc.errors}) from None
    return build(envelope, values)
