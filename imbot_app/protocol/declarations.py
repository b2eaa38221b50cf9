"""What every version's adapter reads of a bot or command declaration.

``lifecycle.specs.BotSpec`` and ``CommandSpec`` satisfy these protocols; the adapters (layer 2)
read declarations through them so they import nothing above their layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["BotDeclaration", "CommandDeclaration"]


class BotDeclaration(Protocol):
    """A declared bot (``lifecycle.specs.BotSpec``)."""

    code: str
    type: str
    openline: bool
    message_edits: bool
    event_mode: str

    @property
    def edits_bound_at_registration(self) -> bool: ...

    def properties_payload(self) -> dict[str, str]: ...


class CommandDeclaration(Protocol):
    """A declared command (``lifecycle.specs.CommandSpec``)."""

    command: str
    common: bool
    hidden: bool
    extranet: bool

    @property
    def titles(self) -> Mapping[str, str]: ...

    @property
    def params_texts(self) -> Mapping[str, str]: ...

    def lang(self) -> list[dict[str, str]]: ...
