"""The chat half of the fake's ``imbot.v2`` methods: commands, messages, reactions, typing.

Mixed into :class:`~imbot_app.testing.fake_v2.FakeV2`, whose state (``_commands``,
``_messages``, ``_reactions``) these handlers read and write under the fake's lock.  Each
handler gets the portal, the bot the common checks already found, and the call's parameters.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import Any

Answer = tuple[int, dict[str, Any]]

MAX_MESSAGE = 20_000  # longer texts are cut and end with " (...)", as Bitrix24 does


def _error(status: int, error: str, description: str) -> Answer:
    return status, {"error": error, "error_description": description}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", False, True) else None
    except (TypeError, ValueError):
        return None


class ChatMethods:
    """``Command.*``, ``Chat.Message.*``, reactions and ``Chat.InputAction.notify``."""

    fake: Any
    _commands: dict[tuple[str, int], dict[str, Any]]
    _messages: dict[tuple[str, int], dict[str, Any]]
    _reactions: set[tuple[str, int, int, str]]
    files: dict[tuple[str, int], dict[str, Any]]

    # ------------------------------------------------------------------ commands

    def _command_register(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        fields = p.get("fields") if isinstance(p.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        word = str(fields.get("command") or "").strip()
        if not word:
            return _error(400, "COMMAND_REQUIRED", "fields.command is required")
        if word.startswith("/") or not word.replace("_", "").isalnum():
            return _error(400, "COMMAND_NAME_INVALID", f"Invalid command name {word}")
        hidden = bool(fields.get("hidden"))
        if not hidden and not fields.get("title"):
            return _error(400, "COMMAND_TITLE_REQUIRED", "fields.title is required")
        for command in self._commands.values():
            if command["botId"] == bot.id and command["command"] == "/" + word:
                return 200, {"result": {"command": dict(command)}}
        command_id = self.fake.next_id()
        command = {
            "id": command_id,
            "botId": bot.id,
            "command": "/" + word,
            "common": bool(fields.get("common")),
            "hidden": hidden,
            "extranetSupport": bool(fields.get("extranetSupport")),
            "title": dict(fields.get("title") or {}),
            "params": dict(fields.get("params") or {}),
        }
        self._commands[(portal.member_id, command_id)] = command
        return 200, {"result": {"command": dict(command)}}

    def _command(self, portal: Any, bot: Any, p: dict[str, Any]) -> dict[str, Any] | None:
        command = self._commands.get((portal.member_id, _int(p.get("commandId")) or 0))
        return command if command is not None and command["botId"] == bot.id else None

    def _command_update(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        command = self._command(portal, bot, p)
        if command is None:
            return _error(400, "COMMAND_NOT_FOUND", "Command not found")
        fields = p.get("fields")
        if not isinstance(fields, dict) or not fields:
            return _error(400, "FIELDS_REQUIRED", "fields are required")
        if "command" in fields:
            word = str(fields["command"] or "").strip()
            if not word:
                return _error(400, "COMMAND_NAME_EMPTY", "Command name is empty")
            if word.startswith("/") or not word.replace("_", "").isalnum():
                return _error(400, "COMMAND_NAME_INVALID", f"Invalid command name {word}")
            command["command"] = "/" + word
        for key in ("title", "params"):
            if isinstance(fields.get(key), dict):
                for lang, value in fields[key].items():
                    if value is None:
                        command[key].pop(lang, None)  # null deletes a language
                    else:
                        command[key][lang] = value
        for key in ("common", "hidden", "extranetSupport"):
            if key in fields:
                command[key] = bool(fields[key])
        return 200, {"result": {"command": dict(command)}}

    def _command_unregister(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        command = self._command(portal, bot, p)
        if command is None:
            return _error(400, "COMMAND_NOT_FOUND", "Command not found")
        del self._commands[(portal.member_id, command["id"])]
        return 200, {"result": True}

    def _command_answer(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        if self._command(portal, bot, p) is None:
            return _error(400, "COMMAND_NOT_FOUND", "Command not found")
        if not _int(p.get("messageId")) or not p.get("dialogId"):
            return _error(400, "COMMAND_ANSWER_FAILED", "messageId and dialogId are required")
        status, body = self._write(portal, bot, p, answer_to=_int(p.get("messageId")))
        return (200, {"result": True}) if status == 200 else (status, body)

    # ------------------------------------------------------------------ messages

    def _write(
        self, portal: Any, bot: Any, p: dict[str, Any], *, answer_to: int | None = None
    ) -> Answer:
        fields = p.get("fields") if isinstance(p.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        text = str(fields.get("message") or "")
        if not text.strip() and not fields.get("attach"):
            return _error(400, "EMPTY_MESSAGE", "Message is empty")
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + " (...)"
        message_id = self.fake.next_id()
        self._messages[(portal.member_id, message_id)] = {
            "id": message_id,
            "authorId": bot.id,
            "dialogId": str(p.get("dialogId")),
            "text": text,
            **{k: fields[k] for k in ("attach", "keyboard", "system", "replyId") if k in fields},
            **({"answerTo": answer_to} if answer_to else {}),
        }
        return 200, {"result": {"id": message_id, "uuidMap": {}}}

    def _message_send(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        if not p.get("dialogId"):
            return _error(400, "DIALOG_ID_REQUIRED", "dialogId is required")
        return self._write(portal, bot, p)

    def _own_message(self, portal: Any, bot: Any, p: dict[str, Any]) -> dict[str, Any] | Answer:
        message = self._messages.get((portal.member_id, _int(p.get("messageId")) or 0))
        if message is None or message["authorId"] != bot.id:
            return _error(403, "ACCESS_DENIED", "The bot can only change its own messages")
        return message

    def _message_update(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        found = self._own_message(portal, bot, p)
        if isinstance(found, tuple):
            return found
        fields = p.get("fields")
        if not isinstance(fields, dict) or not fields:
            return _error(400, "FIELDS_REQUIRED", "fields are required")
        if "message" in fields:
            found["text"] = str(fields["message"] or "")
        for key in ("attach", "keyboard"):
            if fields.get(key) == "N":
                found.pop(key, None)
            elif key in fields:
                found[key] = fields[key]
        return 200, {"result": True}

    def _message_delete(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        found = self._own_message(portal, bot, p)
        if isinstance(found, tuple):
            return found
        del self._messages[(portal.member_id, found["id"])]
        return 200, {"result": True}

    def _reaction(self, *, add: bool) -> Callable[[Any, Any, dict[str, Any]], Answer]:
        def handle(portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
            message_id = _int(p.get("messageId"))
            reaction = str(p.get("reaction") or "")
            if not message_id or not reaction:
                return _error(400, "PARAMS_REQUIRED", "messageId and reaction are required")
            key = (portal.member_id, bot.id, message_id, reaction)
            if add and key in self._reactions:
                return _error(400, "REACTION_ALREADY_SET", "The reaction is already set")
            if not add and key not in self._reactions:
                return _error(400, "REACTION_NOT_FOUND", "The reaction is not set")
            (self._reactions.add if add else self._reactions.discard)(key)
            return 200, {"result": True}

        return handle

    # ------------------------------------------------------------------ files

    def _file_upload(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        """``File.upload``: the base64 content becomes a file and a message carrying it."""
        fields = p.get("fields") if isinstance(p.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        if not p.get("dialogId"):
            return _error(400, "DIALOG_ID_REQUIRED", "dialogId is required")
        if not fields.get("name") or not fields.get("content"):
            return _error(400, "FILE_EMPTY", "fields.name and fields.content are required")
        try:
            content = base64.b64decode(str(fields["content"]), validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "FILE_INVALID_CONTENT", "content is not base64")
        file_id, message_id = self.fake.next_id(), self.fake.next_id()
        name = str(fields["name"])
        self.files[(portal.member_id, file_id)] = {"id": file_id, "name": name, "content": content}
        self._messages[(portal.member_id, message_id)] = {
            "id": message_id,
            "authorId": bot.id,
            "dialogId": str(p["dialogId"]),
            "text": str(fields.get("message") or ""),
            "files": [file_id],
        }
        extension = name.rsplit(".", 1)[-1] if "." in name else ""
        file = {"id": file_id, "chatId": 0, "name": name, "extension": extension}
        return 200, {
            "result": {
                "file": {**file, "size": len(content)},
                "messageId": message_id,
                "chatId": 0,
                "dialogId": str(p["dialogId"]),
            }
        }

    def _file_download(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        """``File.download``: a one-time URL (the fake does not serve it)."""
        file = self.files.get((portal.member_id, _int(p.get("fileId")) or 0))
        if file is None:
            return _error(400, "FILE_NOT_FOUND", "File not found")
        url = f"{self.fake.url}/download/{file['id']}/{secrets.token_hex(8)}"
        return 200, {"result": {"downloadUrl": url}}

    def _input_action(self, portal: Any, bot: Any, p: dict[str, Any]) -> Answer:
        if not p.get("dialogId"):
            return _error(400, "DIALOG_ID_REQUIRED", "dialogId is required")
        duration = _int(p.get("duration"))
        if p.get("duration") is not None and (duration is None or not 1 <= duration <= 600):
            return _error(400, "INVALID_DURATION", "duration is 1-600 seconds")
        return 200, {"result": True}
