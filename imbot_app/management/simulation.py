"""What ``manage.py imbot_simulate`` says to a bot, and what it tidies away afterwards.

The script is the project's own: ``--command "/weather berlin"`` and ``--message "hi"`` as
given, or, without them, each declared command once (``IMBOT_BOTS`` and ``declare()``) with its
parameter hint as the text, then a private message, a group mention and a join.  A project
that declares nothing gets the demo echo bot's ``/echo test``.

A simulated portal is throw-away: its fake Bitrix24 is gone when the command ends, so a portal
left behind would make ``imbot_register`` call a dead address.  :func:`forget_portals` deletes
it with everything it implied (bots, commands, chats, events): the rows a real uninstall keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from django.core.management.base import CommandError
from django.db import transaction

from imbot_app.lifecycle.specs import BotSpec, CommandSpec
from imbot_app.models import Portal
from imbot_app.wire import encode_form

MESSAGE = "message"
COMMAND = "command"
JOIN = "join"
DEMO_BOT = "echobot"
GROUP_CHAT = 42
MAX_STEP_TEXT = 4000  # Bitrix24's own limit on a chat message is in this order
_COMMAND_TEXT = re.compile(r"/(?P<word>[A-Za-z0-9_]+)(?:\s+(?P<params>.*))?", re.DOTALL)


@dataclass(frozen=True)
class Step:
    """One event the simulated user causes."""

    kind: str  # MESSAGE, COMMAND or JOIN
    text: str = ""  # the message, or the command's parameters
    command: str = ""  # the word, without the slash
    bot_code: str = ""  # which bot the command belongs to ("" = the first bot)
    chat_id: int | None = None  # a group chat; None = the private dialog

    @property
    def title(self) -> str:
        where = f" in group chat{self.chat_id}" if self.chat_id else ""
        if self.kind == COMMAND:
            return f"/{self.command} {self.text}".rstrip() + where
        if self.kind == JOIN:
            return f"the bot added to {f'group chat{self.chat_id}' if self.chat_id else 'a dialog'}"
        return f"{self.text!r}{where}"


def parse_command(text: str) -> tuple[str, str]:
    """``"/weather berlin"`` -> ``("weather", "berlin")``; ValueError if it is not a command."""
    found = _COMMAND_TEXT.fullmatch(text.strip())
    if found is None:
        raise ValueError(f'{text!r} is not a command like "/weather berlin"')
    return found.group("word"), (found.group("params") or "").strip()


def _checked(text: str) -> str:
    if len(text) > MAX_STEP_TEXT:
        raise ValueError(f"a message or command is at most {MAX_STEP_TEXT} characters")
    return text


def given_script(commands: Sequence[str], messages: Sequence[str]) -> list[Step]:
    """The steps of ``--command`` and ``--message``: commands first, each in the given order."""
    steps = []
    for text in commands:
        word, params = parse_command(_checked(text))
        steps.append(Step(COMMAND, params, command=word))
    steps.extend(Step(MESSAGE, _checked(text)) for text in messages)
    return steps


def commands_of(spec: BotSpec) -> list[CommandSpec]:
    return [c if isinstance(c, CommandSpec) else CommandSpec.from_dict(c) for c in spec.commands]


def default_script(specs: Iterable[BotSpec]) -> list[Step]:
    """Each declared command once (its English parameter hint as text), then small talk."""
    steps = []
    for spec in specs:
        for command in commands_of(spec):
            if command.hidden:
                continue
            hints = command.params_texts
            sample = hints.get("en") or next(iter(hints.values()), "")
            steps.append(Step(COMMAND, sample, command=command.command, bot_code=spec.code))
    if not steps:
        steps.append(Step(COMMAND, "test", command="echo", bot_code=DEMO_BOT))
    steps += [
        Step(MESSAGE, "Hello, bot"),
        Step(MESSAGE, "how are you?", chat_id=GROUP_CHAT),
        Step(JOIN, chat_id=GROUP_CHAT),
    ]
    return steps


def forget_portals(member_ids: Iterable[str]) -> int:
    """Delete simulated portals and every row that hangs off them; returns how many portals."""
    with transaction.atomic():
        portals = Portal.objects.filter(member_id__in=list(member_ids))
        found = portals.count()
        portals.delete()
    return found


def post_form(url: str, payload: dict[str, Any]) -> requests.Response:
    """Post ``payload`` to the bot form-encoded, as Bitrix24 does; one clear line if it is down."""
    try:
        return requests.post(
            url,
            data=encode_form(payload),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
    except requests.RequestException as exc:
        raise CommandError(
            f"cannot reach the bot at {url} ({type(exc).__name__}): is it running? "
            "(`make run`, or use --serve PORT)"
        ) from None
