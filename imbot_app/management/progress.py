"""A plain-text progress bar on stderr for long management commands (no dependency).

On a terminal it redraws one line (``\\r``) at most every ``min_interval`` seconds; into a file
or a pipe (cron, CI logs) it writes a whole line at every tenth of the way instead, so logs do
not fill with carriage returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """``label [#######-------]  700/1000  70%  1234/s``."""

    def __init__(
        self,
        total: int,
        stream: TextIO | Any,
        *,
        label: str = "",
        width: int = 30,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 0)
        self.stream = stream
        self.label = label
        self.width = width
        self.min_interval = min_interval
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_draw = float("-inf")
        self._last_tenth = 0
        isatty = getattr(stream, "isatty", None)
        self.interactive = bool(isatty and isatty())

    @classmethod
    def for_command(cls, output: Any, total: int, **kwargs: Any) -> ProgressBar:
        """A bar on a management command's ``self.stderr`` (an OutputWrapper, which would
        end every write with a newline: the bar writes to the stream it wraps)."""
        return cls(total, getattr(output, "_out", output), **kwargs)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.interactive:
            now = self.clock()
            if now - self._last_draw >= self.min_interval or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self.line())
                self.stream.flush()
        elif self.total:
            tenth = min(self.done * 10 // self.total, 10)
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def finish(self) -> None:
        """End the bar's line (a terminal's cursor stays on it otherwise)."""
        if self.interactive:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        elif self.total == 0 or self._last_tenth < 10:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        digits = len(str(self.total))
        prefix = f"{self.label} " if self.label else ""
        return f"{prefix}[{bar}] {self.done:>{digits}}/{self.total} {fraction:>4.0%} {rate:,.0f}/s"
