"""v1 serializers: what each event's ``data`` holds, per Bitrix24's reference pages.

One serializer per block (``BOT``, ``COMMAND``, ``USER``, ``PARAMS``) and per event's ``data``;
unknown keys are ignored (they stay in the stored payload).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from imbot_app import events as ev
from imbot_app.protocol.fields import (
    AuthField,
    LenientIntegerField,
    MappingField,
    auth_block,
    clean_auth,
    flag_field,
    int_field,
    text_field,
)


class TokenEntrySerializer(serializers.Serializer):
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
        return auth_block(merged)


class BotEntrySerializer(TokenEntrySerializer):
    BOT_ID = int_field()
    BOT_CODE = text_field(max_length=255)


class CommandEntrySerializer(TokenEntrySerializer):
    COMMAND = serializers.CharField(max_length=255)
    COMMAND_ID = int_field()
    COMMAND_PARAMS = text_field()
    COMMAND_CONTEXT = text_field(max_length=16)
    MESSAGE_ID = int_field()
    BOT_ID = int_field()
    BOT_CODE = text_field(max_length=255)


class UserSerializer(serializers.Serializer):
    """``data[USER]``; the reduced command variant has only ID, names and gender."""

    ID = int_field(required=True)
    NAME = text_field(max_length=255)
    FIRST_NAME = text_field(max_length=255)
    LAST_NAME = text_field(max_length=255)
    WORK_POSITION = text_field(max_length=255)
    GENDER = text_field(max_length=1)
    IS_BOT = flag_field()
    IS_CONNECTOR = flag_field()
    IS_NETWORK = flag_field()
    IS_EXTRANET = flag_field()


class ChatParamsSerializer(serializers.Serializer):
    """The chat part of ``data[PARAMS]``; CHAT_* keys are absent in private chats."""

    DIALOG_ID = serializers.CharField(max_length=64)
    CHAT_TYPE = text_field(max_length=2)
    MESSAGE_TYPE = text_field(max_length=2)
    CHAT_ID = int_field()
    TO_CHAT_ID = int_field()
    CHAT_TITLE = text_field(max_length=255)
    CHAT_ENTITY_TYPE = text_field(max_length=64)
    CHAT_ENTITY_ID = text_field(max_length=255)
    CHAT_USER_COUNT = int_field(min_value=0, max_value=2**31 - 1)
    LANGUAGE = text_field(max_length=10)


class MessageParamsSerializer(ChatParamsSerializer):
    """``data[PARAMS]`` of the message events (ONIMBOTMESSAGE*, ONIMCOMMANDADD)."""

    MESSAGE_ID = int_field()
    ID = int_field()
    MESSAGE = text_field()
    MESSAGE_ORIGINAL = text_field()
    FROM_USER_ID = int_field()
    AUTHOR_ID = int_field()
    TO_USER_ID = int_field()
    SYSTEM = flag_field()
    MENTIONED_LIST = MappingField()
    FILES = MappingField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("MESSAGE_ID") is None and attrs.get("ID") is None:
            raise serializers.ValidationError({"MESSAGE_ID": ["This field is required."]})
        return attrs


class JoinParamsSerializer(ChatParamsSerializer):
    """``data[PARAMS]`` of ONIMBOTJOINCHAT."""

    BOT_ID = int_field()
    USER_ID = int_field()
    FROM_USER_ID = int_field()
    TO_USER_ID = int_field()
    CHAT_AUTHOR_ID = int_field()
    ACCESS_HISTORY = flag_field()


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
    BOT_ID = int_field(required=True)
    BOT_CODE = text_field(max_length=255)


class AppInstallDataSerializer(serializers.Serializer):
    VERSION = text_field(max_length=20)
    ACTIVE = flag_field()
    INSTALLED = flag_field()
    LANGUAGE_ID = text_field(max_length=10)


class AppUpdateDataSerializer(serializers.Serializer):
    VERSION = text_field(max_length=20)
    PREVIOUS_VERSION = text_field(max_length=20)
    LANGUAGE_ID = text_field(max_length=10)


class AppUninstallDataSerializer(serializers.Serializer):
    LANGUAGE_ID = text_field(max_length=10)
    CLEAN = flag_field()


# --------------------------------------------------------------------------- envelope


class EnvelopeSerializer(serializers.Serializer):
    """What every Bitrix24 event carries."""

    event = serializers.CharField(max_length=64)
    event_handler_id = int_field(allow_null=True)
    ts = LenientIntegerField()
    auth = AuthField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # A field called "data" cannot be declared on the class: it would hide Serializer.data.
        fields = super().get_fields()
        fields["data"] = MappingField(allow_empty=True)
        return fields
