"""The REST methods the fake answers: ``batch``, ``imbot.*`` and ``event.*``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from imbot_app.testing.fake_state import (
    Answer,
    FakePortal,
    FakeShared,
    FakeToken,
    RecordedCall,
    by_id,
    delete_by_id,
    error_answer,
    update_by_id,
    yn_flag,
)
from imbot_app.wire import decode_form


class ImbotMethods(FakeShared):
    """One method per REST method, each ``(portal, caller, params) -> answer``."""

    methods: dict[str, Callable[[FakePortal, FakeToken, dict[str, Any]], Answer]]

    def next_id(self) -> int:
        raise NotImplementedError

    @staticmethod
    def _wrap(answer: Answer) -> Answer:
        raise NotImplementedError

    def _batch(self, portal: FakePortal, info: FakeToken, params: dict[str, Any]) -> Answer:
        commands = params.get("cmd") or {}
        if not isinstance(commands, dict):
            return error_answer(400, "INVALID_REQUEST", "cmd must be an object")
        if len(commands) > 50:
            return error_answer(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")) in ("1", "true", "Y")
        results: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            sub = decode_form(query.encode()) if query else {}
            self.calls.append(RecordedCall(method, dict(sub), None, in_batch=True))
            handler = self.methods.get(method)
            if method == "batch":
                status, body = error_answer(
                    405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                )
            elif handler is None:
                status, body = error_answer(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            else:
                status, body = handler(portal, info, sub)
            if status == 200:
                results[key] = body["result"]
            else:
                failures[key] = body
                if halt:
                    break
        return self._wrap(
            (
                200,
                {
                    "result": {
                        "result": results,
                        "result_error": failures,
                        "result_total": {},
                        "result_next": {},
                        "result_time": {},
                    }
                },
            )
        )

    # ------------------------------------------------------------------ imbot.*

    def _register(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        code = str(p.get("CODE", "")).strip()
        if not code:
            return error_answer(400, "CODE_ERROR", "Bot code is not specified")
        properties = p.get("PROPERTIES") or {}
        if not isinstance(properties, dict) or not (
            properties.get("NAME") or properties.get("LAST_NAME")
        ):
            return error_answer(400, "NAME_ERROR", "Bot name is not specified")
        handlers = {
            key: p.get(key) or p.get("EVENT_HANDLER")
            for key in (
                "EVENT_MESSAGE_ADD",
                "EVENT_WELCOME_MESSAGE",
                "EVENT_BOT_DELETE",
                "EVENT_MESSAGE_UPDATE",
                "EVENT_MESSAGE_DELETE",
            )
        }
        for required in ("EVENT_MESSAGE_ADD", "EVENT_WELCOME_MESSAGE", "EVENT_BOT_DELETE"):
            if not handlers[required]:
                return error_answer(400, f"{required}_ERROR", "Event handler is not specified")
        bot_type = str(p.get("TYPE") or "B").upper()
        openline = "Y" if bot_type == "O" else yn_flag(p.get("OPENLINE"))
        if bot_type in ("B", "H") and openline == "N":
            # Bitrix24 silently ignores these two for plain bots (bind them with imbot.update).
            handlers["EVENT_MESSAGE_UPDATE"] = None
            handlers["EVENT_MESSAGE_DELETE"] = None
        for bot_id, bot in portal.bots.items():
            if bot["CODE"] == code:
                return 200, {"result": bot_id}
        bot_id = next(self._ids)
        portal.bots[bot_id] = {
            "ID": bot_id,
            "CODE": code,
            "TYPE": bot_type,
            "OPENLINE": openline,
            "PROPERTIES": dict(properties),
            "CLIENT_ID": p.get("CLIENT_ID", ""),
            **handlers,
        }
        return 200, {"result": bot_id}

    def _update(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        def apply(bot: dict[str, Any], fields: dict[str, Any]) -> None:
            for key, value in fields.items():
                if key == "PROPERTIES" and isinstance(value, dict):
                    bot["PROPERTIES"].update(value)
                elif key in ("CODE",) or key.startswith("EVENT_"):
                    bot[key] = value

        return update_by_id(portal.bots, p, "BOT_ID", "BOT_ID_ERROR", "Bot not found", apply)

    def _unregister(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        bot = by_id(portal.bots, p, "BOT_ID")
        if bot is None:
            return error_answer(400, "BOT_ID_ERROR", "Bot not found")
        del portal.bots[bot["ID"]]
        for command_id in [c for c, cmd in portal.commands.items() if cmd["BOT_ID"] == bot["ID"]]:
            del portal.commands[command_id]
        return 200, {"result": True}

    def _bot_list(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        listed = {
            str(bot_id): {
                "ID": bot_id,
                "NAME": bot["PROPERTIES"].get("NAME", ""),
                "CODE": bot["CODE"],
                "OPENLINE": bot["OPENLINE"],
            }
            for bot_id, bot in portal.bots.items()
        }
        return 200, {"result": listed}

    def _command_register(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        bot = by_id(portal.bots, p, "BOT_ID")
        if bot is None:
            return error_answer(400, "BOT_ID_ERROR", "Bot not found")
        word = str(p.get("COMMAND", "")).strip()
        if not word or not word.replace("_", "").isalnum():
            return error_answer(400, "COMMAND_ERROR", "Command text is not specified")
        if not p.get("EVENT_COMMAND_ADD"):
            return error_answer(
                400, "EVENT_COMMAND_ADD_ERROR", "Link to the event handler is not specified"
            )
        lang = p.get("LANG")
        if not lang:
            return error_answer(400, "LANG_ERROR", "Language phrases are not specified")
        for command_id, command in portal.commands.items():
            if command["BOT_ID"] == bot["ID"] and command["COMMAND"] == word:
                return 200, {"result": command_id}
        command_id = next(self._ids)
        portal.commands[command_id] = {
            "ID": command_id,
            "BOT_ID": bot["ID"],
            "COMMAND": word,
            "COMMON": yn_flag(p.get("COMMON")),
            "HIDDEN": yn_flag(p.get("HIDDEN")),
            "EXTRANET_SUPPORT": yn_flag(p.get("EXTRANET_SUPPORT")),
            "LANG": lang,
            "EVENT_COMMAND_ADD": p.get("EVENT_COMMAND_ADD"),
        }
        return 200, {"result": command_id}

    def _command_update(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        def apply(command: dict[str, Any], fields: dict[str, Any]) -> None:
            # As Bitrix24's core: COMMON cannot be changed (only unregister and register again).
            for key in ("COMMAND", "EVENT_COMMAND_ADD", "HIDDEN", "EXTRANET_SUPPORT", "LANG"):
                if key in fields:
                    command[key] = fields[key]

        return update_by_id(
            portal.commands, p, "COMMAND_ID", "COMMAND_ID_ERROR", "Command not found", apply
        )

    def _command_unregister(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        return delete_by_id(
            portal.commands, p, "COMMAND_ID", "COMMAND_ID_ERROR", "Command not found"
        )

    def _store_message(self, portal: FakePortal, p: dict[str, Any], **extra: Any) -> Answer:
        text = str(p.get("MESSAGE") or "").strip()
        if not text and not p.get("ATTACH"):
            return error_answer(400, "MESSAGE_EMPTY", "Message text is empty")
        for part in ("ATTACH", "KEYBOARD", "MENU"):
            if part in p and len(json.dumps(p[part], ensure_ascii=False).encode()) > 30 * 1024:
                return error_answer(
                    400, f"{part}_OVERSIZE", "You have exceeded the maximum allowable size"
                )
        message_id = next(self._ids)
        portal.messages[message_id] = {
            "ID": message_id,
            "MESSAGE": text,
            **{k: p[k] for k in ("ATTACH", "KEYBOARD", "MENU", "DIALOG_ID", "BOT_ID") if k in p},
            **extra,
        }
        return 200, {"result": message_id}

    def _command_answer(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        if by_id(portal.commands, p, "COMMAND_ID") is None and not p.get("COMMAND"):
            return error_answer(400, "COMMAND_ID_ERROR", "Command not found")
        if not p.get("MESSAGE_ID"):
            return error_answer(400, "MESSAGE_ID_ERROR", "Message ID can't be empty")
        return self._store_message(portal, p, ANSWER_TO=p.get("MESSAGE_ID"))

    def _message_add(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        if not p.get("DIALOG_ID") and not (p.get("FROM_USER_ID") and p.get("TO_USER_ID")):
            return error_answer(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        return self._store_message(portal, p)

    def _message_update(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        message = by_id(portal.messages, p, "MESSAGE_ID")
        if message is None:
            return error_answer(400, "MESSAGE_ID_ERROR", "Message ID can't be empty")
        for key in ("MESSAGE", "ATTACH", "KEYBOARD", "MENU"):
            if key in p:
                message[key] = p[key]
        return 200, {"result": True}

    def _message_delete(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        return delete_by_id(
            portal.messages, p, "MESSAGE_ID", "MESSAGE_ID_ERROR", "Message ID can't be empty"
        )

    def _send_typing(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        if not p.get("DIALOG_ID"):
            return error_answer(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        return 200, {"result": True}

    # ------------------------------------------------------------------ event.*

    def _event_bind(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        event = str(p.get("event") or p.get("EVENT") or "").upper()
        handler = str(p.get("handler") or p.get("HANDLER") or "")
        if not event:
            return error_answer(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
        if not handler:
            return error_answer(400, "ERROR_HANDLER_NOT_FOUND", "Handler not found")
        if (event, handler) in portal.bindings:
            return error_answer(400, "ERROR_CORE", "Handler already binded")
        portal.bindings.append((event, handler))
        return 200, {"result": True}

    def _event_unbind(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        event = str(p.get("event") or p.get("EVENT") or "").upper()
        handler = str(p.get("handler") or p.get("HANDLER") or "")
        before = len(portal.bindings)
        portal.bindings[:] = [
            (e, h) for e, h in portal.bindings if not (e == event and handler in (h, ""))
        ]
        return 200, {"result": {"count": before - len(portal.bindings)}}

    def _event_get(self, portal: FakePortal, info: FakeToken, p: dict[str, Any]) -> Answer:
        listed = [
            {"event": e, "handler": h, "auth_type": "0", "offline": 0} for e, h in portal.bindings
        ]
        return 200, {"result": listed}
