"""Argument types for the management commands, built from the parsers in
imbot_app.management.timespec."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from imbot_app.management.timespec import parse_duration, parse_moment

T = TypeVar("T")


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` for argparse: its ValueError becomes a usage error naming the option."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


duration = argument_type(parse_duration)
moment = argument_type(parse_moment)


def repeatable(
    parser: argparse.ArgumentParser, flag: str, dest: str, help: str, **extra: Any
) -> None:
    """An option that may be given many times; absent, it is an empty list."""
    parser.add_argument(flag, dest=dest, action="append", default=[], help=help, **extra)
