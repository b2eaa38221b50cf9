"""Builders for the KEYBOARD and ATTACH structures of Bitrix24 messages.

Bitrix24 refuses a KEYBOARD, ATTACH or MENU over 30 KB (``KEYBOARD_OVERSIZE`` ...) after the
call has been spent against the portal's rate limit; :func:`check_size` refuses it here first.

    keyboard = Keyboard().button("Next page", command="page", params="2").newline()
    keyboard.button("Docs", link="https://example.com/docs")
    attach = Attach(color="#29619b").message("Found 3 tickets").grid(
        [("Status", "open"), ("Owner", "Ann")]
    )
    message.reply("Here you are", keyboard=keyboard, attach=attach)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from imbot_app.errors import ImbotError

MAX_BYTES = 30 * 1024

_ACTIONS = frozenset({"PUT", "SEND", "COPY", "CALL", "DIALOG"})


class BlockTooLarge(ImbotError, ValueError):
    """A KEYBOARD, ATTACH or MENU larger than Bitrix24 accepts (30 KB)."""


def check_size(name: str, value: Any) -> Any:
    """Return ``value`` if its JSON fits in 30 KB, else raise :class:`BlockTooLarge`."""
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_BYTES:
        raise BlockTooLarge(f"{name} is {size} bytes; Bitrix24 accepts at most {MAX_BYTES}")
    return value


class Keyboard:
    """Buttons under a message; a COMMAND button sends ONIMCOMMANDADD with context KEYBOARD."""

    def __init__(self) -> None:
        self.buttons: list[dict[str, Any]] = []

    def button(
        self,
        text: str,
        *,
        command: str | None = None,
        params: str = "",
        link: str | None = None,
        action: str | None = None,
        action_value: str = "",
        block: bool = False,
        disabled: bool = False,
        bg_color: str | None = None,
        text_color: str | None = None,
        display: str = "LINE",
        width: int | None = None,
    ) -> Keyboard:
        """Add a button with exactly one of ``command``, ``link`` or ``action``."""
        chosen = [x for x in (command, link, action) if x]
        if len(chosen) != 1:
            raise ValueError("a button needs exactly one of command=, link= or action=")
        button: dict[str, Any] = {"TEXT": text, "DISPLAY": display}
        if command:
            button.update(COMMAND=command.lstrip("/"), COMMAND_PARAMS=params)
            if block:
                button["BLOCK"] = "Y"
        elif link:
            button["LINK"] = link
        else:
            assert action is not None
            if action.upper() not in _ACTIONS:
                raise ValueError(f"action must be one of {sorted(_ACTIONS)}")
            button.update(ACTION=action.upper(), ACTION_VALUE=action_value)
        if disabled:
            button["DISABLED"] = "Y"
        if bg_color:
            button["BG_COLOR"] = bg_color
        if text_color:
            button["TEXT_COLOR"] = text_color
        if width is not None:
            button["WIDTH"] = str(width)
        self.buttons.append(button)
        return self

    def newline(self) -> Keyboard:
        self.buttons.append({"TYPE": "NEWLINE"})
        return self

    def to_bitrix(self) -> list[dict[str, Any]]:
        return check_size("KEYBOARD", [dict(b) for b in self.buttons])


class Attach:
    """A rich block under a message: text, links, grids, images, files, delimiters."""

    def __init__(self, *, color: str | None = None, id: int | None = None) -> None:
        self.color = color
        self.id = id
        self.blocks: list[dict[str, Any]] = []

    def _add(self, block: dict[str, Any]) -> Attach:
        self.blocks.append(block)
        return self

    def message(self, text: str) -> Attach:
        return self._add({"MESSAGE": text})

    def link(self, url: str, *, name: str = "", description: str = "", preview: str = "") -> Attach:
        return self._add(
            {"LINK": {"LINK": url, **_given(NAME=name, DESC=description, PREVIEW=preview)}}
        )

    def user(self, name: str, *, avatar: str = "", link: str = "") -> Attach:
        return self._add({"USER": {"NAME": name, **_given(AVATAR=avatar, LINK=link)}})

    def grid(
        self, rows: Iterable[tuple[str, str]], *, display: str = "LINE", width: int = 100
    ) -> Attach:
        """Name/value rows, as the EchoBot shows them."""
        grid = [
            {"NAME": name, "VALUE": value, "DISPLAY": display, "WIDTH": width}
            for name, value in rows
        ]
        return self._add({"GRID": grid})

    def image(self, url: str, *, name: str = "", preview: str = "") -> Attach:
        return self._add({"IMAGE": [{"LINK": url, **_given(NAME=name, PREVIEW=preview)}]})

    def file(self, url: str, *, name: str = "", size: int | None = None) -> Attach:
        entry: dict[str, Any] = {"LINK": url}
        if name:
            entry["NAME"] = name
        if size is not None:
            entry["SIZE"] = size
        return self._add({"FILE": [entry]})

    def delimiter(self, *, size: int = 200, color: str = "#c6c6c6") -> Attach:
        return self._add({"DELIMITER": {"SIZE": size, "COLOR": color}})

    def to_bitrix(self) -> dict[str, Any]:
        attach: dict[str, Any] = {"BLOCKS": [dict(b) for b in self.blocks]}
        if self.id is not None:
            attach["ID"] = self.id
        if self.color:
            attach["COLOR"] = self.color
        return check_size("ATTACH", attach)


def _given(**fields: str) -> dict[str, str]:
    """The optional fields that were given (empty strings are left out, as Bitrix24 wants)."""
    return {key: value for key, value in fields.items() if value}


def to_bitrix(name: str, value: Any) -> Any:
    """A builder's structure, or a raw structure checked for size (None stays None)."""
    if value is None:
        return None
    if isinstance(value, Keyboard | Attach):
        return value.to_bitrix()
    return check_size(name, value)
