"""Declared bots and commands: what this app registers on every portal that installs it.

A bot is declared once, in settings or in code, and registered on each portal by
:mod:`imbot_app.lifecycle.registration` (on install, on the install page, or with
``manage.py imbot_register``)::

    # settings.py
    IMBOT_PUBLIC_URL = "https://bot.example.com"
    IMBOT_BOTS = [
        {
            "code": "echobot",
            "name": "Echo bot",
            "color": "GREEN",
            "commands": [
                {"command": "echo", "title": "Repeat a text", "params": "text", "common": True},
                {"command": "help", "title": {"en": "What I can do", "de": "Was ich kann"}},
            ],
        },
    ]

    # or in code, e.g. in an imbot_handlers module
    from imbot_app.lifecycle.specs import BotSpec, CommandSpec
    from imbot_app.lifecycle.bots import declare

    declare(BotSpec(code="echobot", name="Echo bot", commands=[CommandSpec("echo", "Repeat")]))

Declarations are checked when they are made (:class:`DeclarationError` names the bot, the
command and what is wrong) and again by a system check, so a typo fails at start-up instead
of on a customer's portal.  A title or params given as a plain string is English (``"en"``).

The handler URL every bot and command is registered with is :func:`handler_url`:
``IMBOT_PUBLIC_URL`` + the events path (``reverse("imbot_app:events")``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.urls import get_script_prefix, reverse

from imbot_app.conf import imbot_settings
from imbot_app.lifecycle.specs import BotSpec, CommandSpec, DeclarationError

__all__ = [
    "BotRegistry",
    "BotSpec",
    "CommandSpec",
    "DeclarationError",
    "declare",
    "declared_bots",
    "handler_url",
    "install_url",
    "needs_public_url",
    "public_url_problem",
    "registry",
]

# --------------------------------------------------------------------------- registry


class BotRegistry:
    """Bots declared in code with :func:`declare` (settings' ``IMBOT_BOTS`` come first)."""

    def __init__(self) -> None:
        self._specs: dict[str, BotSpec] = {}

    def declare(self, spec: BotSpec | None = None, /, **fields: Any) -> BotSpec:
        """Declare a bot: ``declare(BotSpec(...))`` or ``declare(code=..., name=..., ...)``.

        Declaring the same bot again (a module imported twice) is harmless; declaring a
        different bot under a code already taken is an error.
        """
        if spec is None:
            spec = BotSpec(**fields)
        elif fields:
            raise TypeError("declare() takes a BotSpec or keyword arguments, not both")
        existing = self._specs.get(spec.code)
        if existing is not None and existing != spec:
            raise DeclarationError(f"bot {spec.code!r} is declared twice, differently")
        self._specs[spec.code] = spec
        return spec

    def specs(self) -> tuple[BotSpec, ...]:
        return tuple(self._specs.values())

    def clear(self) -> None:
        self._specs.clear()

    @contextmanager
    def isolated(self) -> Iterator[BotRegistry]:
        """Run a block with no code declarations; the earlier ones come back afterwards."""
        saved = dict(self._specs)
        self._specs.clear()
        try:
            yield self
        finally:
            self._specs = saved


#: The registry :func:`declare` adds to.
registry = BotRegistry()

declare = registry.declare


def declared_bots() -> tuple[BotSpec, ...]:
    """Every declared bot: ``IMBOT_BOTS`` (dicts or BotSpec objects), then code declarations.

    Raises :class:`DeclarationError` for an invalid entry or a code declared twice.
    """
    configured = imbot_settings.BOTS or []
    if isinstance(configured, str | Mapping) or not isinstance(configured, Sequence):
        raise DeclarationError("IMBOT_BOTS must be a list of bots")
    specs: list[BotSpec] = []
    codes: set[str] = set()
    for index, entry in enumerate(configured):
        try:
            spec = entry if isinstance(entry, BotSpec) else BotSpec.from_dict(entry)
            if spec.code in codes:
                raise DeclarationError(f"bot {spec.code!r} is declared twice")
        except DeclarationError as exc:
            raise DeclarationError(f"IMBOT_BOTS[{index}]: {exc}") from None
        codes.add(spec.code)
        specs.append(spec)
    for spec in registry.specs():
        if spec.code in codes:
            raise DeclarationError(
                f"bot {spec.code!r} is declared both in IMBOT_BOTS and with declare()"
            )
        specs.append(spec)
    return tuple(specs)


# --------------------------------------------------------------------------- handler URL


def needs_public_url(specs: Sequence[BotSpec]) -> bool:
    """Whether registering ``specs`` needs IMBOT_PUBLIC_URL: v1 bots and webhook-mode v2 bots
    get their events there; fetch-mode v2 bots pull theirs and need no public address."""
    return any(spec.api != "v2" or spec.event_mode == "webhook" for spec in specs)


def public_url_problem(value: Any) -> str | None:
    """What is wrong with an ``IMBOT_PUBLIC_URL`` value, or ``None`` if it can be used."""
    if not value:
        return (
            "IMBOT_PUBLIC_URL is not set: Bitrix24 needs this site's public address to send "
            "the bots' events to (e.g. https://bot.example.com)"
        )
    if not isinstance(value, str):
        return f"IMBOT_PUBLIC_URL must be a string, not {value!r}"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"IMBOT_PUBLIC_URL {value!r} is not an absolute http(s) URL"
    if parts.query or parts.fragment:
        return f"IMBOT_PUBLIC_URL {value!r} must not have a query or fragment"
    return None


def _path(name: str) -> str:
    """The URL path of ``name`` from the site root, without the request's script prefix.

    The same path whether it is computed in a request (install page) or a management command,
    so the handler URL, and the fingerprints built from it, never depend on who asks.
    """
    path = reverse(name)
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix) :]
    return path


def handler_url() -> str:
    """Where Bitrix24 sends every bot and command event: IMBOT_PUBLIC_URL + the events path.

    Raises :class:`~django.core.exceptions.ImproperlyConfigured` when IMBOT_PUBLIC_URL is
    missing or unusable.
    """
    value = imbot_settings.PUBLIC_URL
    problem = public_url_problem(value)
    if problem:
        raise ImproperlyConfigured(problem)
    return str(value).strip().rstrip("/") + _path("imbot_app:events")


def install_url() -> str:
    """The install page's public URL (for a UI app's "Initial installation path")."""
    value = imbot_settings.PUBLIC_URL
    problem = public_url_problem(value)
    if problem:
        raise ImproperlyConfigured(problem)
    return str(value).strip().rstrip("/") + _path("imbot_app:install")
