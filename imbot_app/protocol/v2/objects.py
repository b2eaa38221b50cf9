"""Field-level validation of the Chatbots 2.0 objects (Bot, Message, Chat, User, command).

The same serializers read both deliveries: fetch JSON has the documented types (ints, real
booleans, ``null``), a form-encoded webhook has every scalar as a string (``"789"``, ``"1"``/
``"0"``, ``null`` left out) and drops empty arrays.  DRF's integer and boolean fields accept
both spellings; what PHP turns ``{}`` into (``[]``) is read as an empty mapping.

Every text has a length bound and every id the 64-bit range, as in the v1 serializers
(:mod:`imbot_app.protocol.v1.events`), so a hostile body gets a field error, never a database error.
Unknown keys are ignored: they stay in the stored payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from imbot_app.protocol.fields import INT64_MAX, INT64_MIN, AuthField

# Longest texts accepted; a message is at most 20,000 characters on Bitrix24's side (longer
# ones are cut with " (...)"), so anything far beyond that is not a real event.
MAX_MESSAGE_TEXT = 65_536
MAX_EVENT_ID = INT64_MAX


def string(max_length: int, **kwargs: Any) -> serializers.CharField:
    """A string kept as sent (no trimming), optional, blank and ``null`` allowed."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    kwargs.setdefault("allow_null", True)
    return serializers.CharField(trim_whitespace=False, max_length=max_length, **kwargs)


def integer(**kwargs: Any) -> serializers.IntegerField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    kwargs.setdefault("min_value", INT64_MIN)
    kwargs.setdefault("max_value", INT64_MAX)
    return serializers.IntegerField(**kwargs)


def flag(**kwargs: Any) -> serializers.BooleanField:
    """``true``/``false`` in JSON, ``"1"``/``"0"`` in a form (``"Y"``/``"N"`` also accepted)."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    return serializers.BooleanField(**kwargs)


class ObjectField(serializers.Field):
    """A nested object kept as sent: a mapping, PHP's ``[]`` for an empty one, or absent.

    ``max_keys`` bounds it (the body's field limit bounds the whole tree as well).
    """

    def __init__(self, *, max_keys: int = 200, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        self.max_keys = max_keys
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, list) and not data:
            return {}
        if data == "":  # a form sends an empty value for an empty object at worst
            return {}
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                f'Expected an object but got type "{type(data).__name__}".'
            )
        if len(data) > self.max_keys:
            raise serializers.ValidationError(
                f"Ensure this object has no more than {self.max_keys} keys."
            )
        return dict(data)

    def to_representation(self, value: Any) -> Any:
        return value


class _Object(serializers.Serializer):
    """A nested object that may arrive as PHP's ``[]`` when empty.

    ``EMPTY_IS_ABSENT``: an empty ``user`` or ``chat`` (``{}``, ``[]``) says nothing, and is
    read as if it were missing; an empty ``message`` or ``bot`` is still an error.
    """

    EMPTY_IS_ABSENT = False

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, list | dict) and not data:
            if self.EMPTY_IS_ABSENT:
                return {}
            data = {}
        return super().to_internal_value(data)


class BotSerializer(_Object):
    """``data.bot``: the extended Bot (fetch) or ``{id, code, auth}`` (webhook)."""

    id = integer(required=True, allow_null=False, min_value=1)
    code = string(255)
    type = string(32)
    language = string(10)
    eventMode = string(16)
    auth = AuthField()


class UserSerializer(_Object):
    """``data.user``: the author, the person who added the bot, reacted, or ran a command."""

    EMPTY_IS_ABSENT = True

    id = integer(required=True, allow_null=False, min_value=0)
    name = string(255)
    firstName = string(255)
    lastName = string(255)
    workPosition = string(255)
    gender = string(1)
    active = flag()
    bot = flag()
    extranet = flag()
    connector = flag()
    externalAuthId = string(64)
    type = string(32)


class ChatSerializer(_Object):
    """``data.chat``; events carry a subset of the entity (no ``role``, ``muteList``)."""

    EMPTY_IS_ABSENT = True

    id = integer(min_value=0)
    dialogId = string(64)
    type = string(32)
    messageType = string(2)
    name = string(255)
    entityType = string(64)
    # A number for some entities, an id string with pipes for open lines (``livechat|2|98|62``).
    entityId = string(255)
    owner = integer()
    description = string(4096)


class MessageSerializer(_Object):
    """``data.message``."""

    id = integer(required=True, allow_null=False, min_value=1)
    chatId = integer(min_value=0)
    authorId = integer(min_value=0)
    date = string(64)
    text = string(MAX_MESSAGE_TEXT)
    isSystem = flag()
    uuid = string(64)
    forward = ObjectField(max_keys=20)
    params = ObjectField()
    viewedByOthers = flag()


class CommandSerializer(_Object):
    """``data.command`` of ONIMBOTV2COMMANDADD: ``{id, command "/help", params, context}``."""

    id = integer(required=True, allow_null=False, min_value=1)
    command = serializers.CharField(max_length=255, trim_whitespace=False)
    params = string(MAX_MESSAGE_TEXT)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "context" cannot be a class attribute: it would hide Serializer.context.
        fields = super().get_fields()
        fields["context"] = string(16)
        return fields

    def validate_command(self, value: str) -> str:
        word = value.strip().removeprefix("/")
        if not word:
            raise serializers.ValidationError("A command name is required.")
        return word


class FetchItemSerializer(serializers.Serializer):
    """One ``imbot.v2.Event.get`` item: ``{eventId, type, date, data}``."""

    eventId = serializers.IntegerField(min_value=1, max_value=MAX_EVENT_ID)
    type = serializers.CharField(max_length=64)
    date = string(64)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "data" cannot be a class attribute: it would hide Serializer.data.
        fields = super().get_fields()
        fields["data"] = ObjectField(required=True, allow_null=False, max_keys=50)
        return fields


# --------------------------------------------------------------------------- data per event


class _BotData(serializers.Serializer):
    bot = BotSerializer()


class _ChatData(_BotData):
    chat = ChatSerializer(required=False)
    user = UserSerializer(required=False)
    language = string(10)
    dialogId = string(64)


class MessageData(_ChatData):
    message = MessageSerializer()


class MessageDeleteData(_ChatData):
    messageId = integer(required=True, allow_null=False, min_value=1)


class JoinData(_ChatData):
    pass


class ContextData(_ChatData):
    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["context"] = ObjectField(max_keys=50)
        return fields


class CommandData(MessageData):
    command = CommandSerializer()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["message"] = MessageSerializer(required=False)
        return fields


class ReactionData(MessageData):
    reaction = serializers.CharField(max_length=64)
    action = serializers.ChoiceField(choices=["add", "delete"])


class BotDeleteData(_BotData):
    pass
