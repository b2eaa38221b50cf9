"""Handler patterns matched against message text with a bound on time and on text length.

``@on_message(regex=...)`` applies a pattern the project wrote to text anyone can send.  A
pattern with nested quantifiers (``(a|aa)+$``) backtracks exponentially on a crafted message,
and Python's ``re`` cannot be interrupted: one message would hold a worker for minutes and
leave its event ``received``.  So patterns are compiled with the `regex` package (re-compatible
in its default VERSION0 mode, same groups and flags) and searched with its ``timeout=``
(``IMBOT_REGEX_TIMEOUT`` seconds), on at most ``IMBOT_REGEX_MAX_TEXT`` characters of the text.

A timeout raises :class:`PatternTimeout`; the dispatcher records it as that handler's failure
(a failed HandlerRun, "pattern ... timed out after 0.1 s") and goes on with the other handlers.
"""

from __future__ import annotations

import re

import regex

from imbot_app.conf import imbot_settings

__all__ = ["PatternTimeout", "compile_pattern", "search"]

# re's flags and regex's differ in value (ASCII is 256 in re, 128 in regex): map them by name.
_FLAG_NAMES = ("IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII", "UNICODE", "LOCALE")


class PatternTimeout(Exception):
    """A handler's pattern ran past ``IMBOT_REGEX_TIMEOUT`` on one message."""

    def __init__(self, pattern: str, timeout: float, length: int) -> None:
        shown = pattern if len(pattern) <= 80 else pattern[:79] + "…"
        super().__init__(
            f"pattern {shown!r} timed out after {timeout:g} s on a {length}-character text"
        )
        self.pattern = pattern
        self.timeout = timeout


def _regex_flags(re_flags: int) -> int:
    flags = 0
    for name in _FLAG_NAMES:
        if re_flags & getattr(re, name):
            flags |= getattr(regex, name)
    return flags


def compile_pattern(value: str | re.Pattern[str] | regex.Pattern[str]) -> regex.Pattern[str]:
    """A `regex` pattern (VERSION0: ``re``'s syntax and semantics) for ``value``.

    ``value`` is a pattern string, a compiled ``re`` pattern (its flags are kept) or an
    already compiled ``regex`` pattern.  A pattern ``regex`` cannot compile is refused here,
    at import time of the handler module, rather than matched without a bound.
    """
    if isinstance(value, regex.Pattern):
        return value
    if isinstance(value, re.Pattern):
        source, flags = value.pattern, _regex_flags(value.flags)
    elif isinstance(value, str):
        source, flags = value, 0
    else:
        raise TypeError(f"a message pattern must be a string or a compiled pattern, not {value!r}")
    try:
        return regex.compile(source, flags | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"cannot compile the message pattern {source!r}: {exc}") from exc


def search(pattern: regex.Pattern[str], text: str) -> regex.Match[str] | None:
    """``pattern.search(text)`` within the time and length bounds; raises PatternTimeout."""
    limit = imbot_settings.REGEX_MAX_TEXT
    subject = text[:limit] if limit is not None else text
    timeout = imbot_settings.REGEX_TIMEOUT
    try:
        return pattern.search(subject, timeout=timeout)
    except TimeoutError as exc:
        raise PatternTimeout(pattern.pattern, float(timeout), len(subject)) from exc
