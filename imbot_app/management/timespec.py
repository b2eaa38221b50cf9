"""Points in time and durations as operators type them on the command line.

``imbot_replay --since 2h`` and ``imbot_prune --older-than 30d`` take a relative duration
(``45s``, ``15m``, ``2h``, ``3d``, ``1w``); ``--since`` / ``--until`` also take an ISO date
(``2025-03-01``, midnight in the current time zone) or date-time (``2025-03-01T10:30``,
``2025-03-01 10:30:00+02:00``).  One parser for every command, so they all read the same.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

__all__ = ["parse_duration", "parse_moment"]

_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"30d"`` -> 30 days.  Units: s, m, h, d, w.  Raises ValueError otherwise."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 45s, 15m, 2h, 3d or 1w")
    amount, unit = int(found.group(1)), found.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """An aware datetime: ``"2h"`` is two hours before ``now``; ISO dates and date-times.

    Naive values are read in the current time zone.  Raises ValueError for anything else.
    """
    if _DURATION.fullmatch(text):
        return (now or timezone.now()) - parse_duration(text)
    value = text.strip()
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is not None:
                moment = datetime.combine(day, time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 3d) nor an ISO date (2025-03-01) or "
            "date-time (2025-03-01T10:30)"
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
