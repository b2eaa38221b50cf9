"""The v1 calls handler contexts describe, as Chatbots 2.0 calls.

The contexts of :mod:`imbot_app.dispatch.context` describe replies as v1 ``OutgoingCall`` objects
(``imbot.message.add`` with ``DIALOG_ID``/``MESSAGE``/``KEYBOARD`` ...).  For a v2 bot the
sender passes them through :func:`from_v1` and makes the v2 call instead, so a handler written
for v1 runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imbot_app.protocol.v2.methods import (
    Call,
    answer_command,
    delete_message,
    notify_input,
    send_message,
    update_message,
)

__all__ = ["from_v1"]


def _yes(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).upper() in ("Y", "1", "TRUE")


def from_v1(
    method: str,
    params: Mapping[str, Any],
    *,
    bot_id: int,
    dialog_id: str | None = None,
    bot_token: str | None = None,
) -> Call:
    """The v2 call for a v1 call a handler context describes (``OutgoingCall``).

    ``dialog_id`` is the chat's, needed by ``Command.answer`` (v1's ``imbot.command.answer``
    has none).  ``MENU`` has no v2 counterpart and is refused rather than dropped.
    """
    p = dict(params)
    if "MENU" in p:
        raise ValueError("MENU has no Chatbots 2.0 counterpart; use a keyboard")
    common: dict[str, Any] = {
        "keyboard": p.get("KEYBOARD"),
        "attach": p.get("ATTACH"),
        "bot_token": bot_token,
    }
    preview = _yes(p.get("URL_PREVIEW"))
    if method == "imbot.message.add":
        return send_message(
            bot_id,
            str(p.get("DIALOG_ID") or dialog_id or ""),
            str(p.get("MESSAGE", "")),
            system=_yes(p.get("SYSTEM")),
            url_preview=preview,
            **common,
        )
    if method == "imbot.command.answer":
        if not dialog_id:
            raise ValueError("Command.answer needs the chat's dialog id")
        return answer_command(
            bot_id,
            int(p["COMMAND_ID"]),
            int(p["MESSAGE_ID"]),
            dialog_id,
            str(p.get("MESSAGE", "")),
            system=_yes(p.get("SYSTEM")),
            url_preview=preview,
            **common,
        )
    if method == "imbot.message.update":
        return update_message(
            bot_id, int(p["MESSAGE_ID"]), p.get("MESSAGE"), url_preview=preview, **common
        )
    if method == "imbot.message.delete":
        return delete_message(
            bot_id,
            int(p["MESSAGE_ID"]),
            complete=bool(_yes(p.get("COMPLETE"))),
            bot_token=bot_token,
        )
    if method == "imbot.chat.sendTyping":
        return notify_input(bot_id, str(p.get("DIALOG_ID") or dialog_id), bot_token=bot_token)
    raise ValueError(f"{method} has no Chatbots 2.0 translation")
