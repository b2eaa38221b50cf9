"""Keep a command's output to one line per failure unless ``-v 2`` asks for tracebacks.

The dispatcher logs every failed handler with its traceback (right for a web process, where
the log is the only witness).  A command that reports each failure itself would print the
same failure twice, the second time as a 20-line traceback; below verbosity 2 those records
are dropped for the duration of the command.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

# The loggers (names kept from before the rooms) whose traceback records a command reports itself,
# as one line each.
REPORTED_BY_COMMANDS = ("imbot_app.dispatch", "imbot_app.replay")


class DropTracebacks(logging.Filter):
    """Drop records that carry a traceback; let every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info


@contextmanager
def tracebacks_only_when_verbose(
    verbosity: int, loggers: tuple[str, ...] = REPORTED_BY_COMMANDS
) -> Iterator[None]:
    """Below ``verbosity`` 2, drop the traceback records of ``loggers`` while the block runs."""
    if verbosity >= 2:
        yield
        return
    quiet = DropTracebacks()
    targets = [logging.getLogger(name) for name in loggers]
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)
