"""The overview on imbot_app's admin index: events per hour and handler failures, last day.

Four aggregate queries, each on an index (``Event.received_at``, ``HandlerRun(status,
started_at)``), whatever the size of the tables, and three for the queue (:class:`Queue`):
the backlog on the partial ``imbot_event_waiting`` index and the workers' heartbeats.  The
chart is plain SVG geometry computed here and drawn by a template: no JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from imbot_app.dispatch.worker.queue import backlog
from imbot_app.models import Event, HandlerRun, WorkerHeartbeat

__all__ = ["HOURS", "Bar", "Overview", "Queue", "build"]

HOURS = 24
CHART_TOP = 16  # px above the bars, for the scale's label
CHART_HEIGHT = 120  # px of the bars' area
BAR_WIDTH = 18
BAR_GAP = 6
FAILURE_WIDTH = BAR_WIDTH // 2  # drawn over the right half of the hour's events bar
# An hour label ("12:00", 10 px font, about 6 px a character) is wider than its bar: the chart
# is that much wider than the bars, or the last hour's label is cut ("12:0").
LABEL_WIDTH = 30
CHART_WIDTH = (HOURS - 1) * (BAR_WIDTH + BAR_GAP) + max(BAR_WIDTH, LABEL_WIDTH)
FAILING_HANDLERS_SHOWN = 5
RECENT_FAILURES_SHOWN = 5
WORKERS_SHOWN = 20
# A worker whose heartbeat (every 5 s) is older than this is shown as gone.
WORKER_GONE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class WorkerRow:
    heartbeat: WorkerHeartbeat
    alive: bool
    seconds_ago: float


@dataclass(frozen=True)
class Queue:
    """Events waiting for a handler run, and the imbot_worker processes seen in the last day."""

    waiting: int
    waiting_text: str  # "100000+" past the count's bound
    oldest_wait: float | None
    per_minute: int | None  # events run per minute by the live workers; None: no live worker
    workers: tuple[WorkerRow, ...]


def queue(now: datetime | None = None) -> Queue:
    now = now or timezone.now()
    waiting = backlog(now)
    rows = []
    for heartbeat in WorkerHeartbeat.objects.filter(last_seen__gte=now - timedelta(days=1))[
        :WORKERS_SHOWN
    ]:
        ago = max((now - heartbeat.last_seen).total_seconds(), 0.0)
        alive = not heartbeat.stopped and ago <= WORKER_GONE_AFTER.total_seconds()
        rows.append(WorkerRow(heartbeat, alive, ago))
    live = [row.heartbeat.per_minute for row in rows if row.alive]
    return Queue(
        waiting=waiting.waiting,
        waiting_text=waiting.waiting_text,
        oldest_wait=waiting.oldest_wait,
        per_minute=sum(live) if live else None,
        workers=tuple(rows),
    )


@dataclass(frozen=True)
class Bar:
    """One hour: its events and failed handler runs, with their bars' geometry."""

    start: datetime
    events: int
    failures: int
    x: int
    events_height: int
    failures_height: int

    @property
    def events_y(self) -> int:
        return CHART_TOP + CHART_HEIGHT - self.events_height

    @property
    def failures_x(self) -> int:
        return self.x + BAR_WIDTH - FAILURE_WIDTH

    @property
    def failures_y(self) -> int:
        return CHART_TOP + CHART_HEIGHT - self.failures_height

    @property
    def label(self) -> str:
        """Every sixth hour gets an axis label."""
        return f"{self.start:%H}:00" if self.start.hour % 6 == 0 else ""


@dataclass(frozen=True)
class Overview:
    bars: tuple[Bar, ...]
    since: datetime
    events: int
    failures: int
    peak: int
    failing_handlers: tuple[tuple[str, int], ...]
    recent_failures: tuple[HandlerRun, ...]
    queue: Queue | None = None
    width: int = CHART_WIDTH
    top: int = CHART_TOP
    chart_height: int = CHART_HEIGHT
    baseline: int = CHART_TOP + CHART_HEIGHT
    label_y: int = CHART_TOP + CHART_HEIGHT + 14
    height: int = CHART_TOP + CHART_HEIGHT + 18
    bar_width: int = BAR_WIDTH
    failure_width: int = FAILURE_WIDTH


def build(now: datetime | None = None) -> Overview:
    """The last :data:`HOURS` hours up to ``now``, hour by hour in the current time zone."""
    now = timezone.localtime(now or timezone.now())
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    events = _per_hour(Event.objects.filter(received_at__gte=first_hour), "received_at")
    failed_runs = HandlerRun.objects.filter(
        status=HandlerRun.Status.FAILED, started_at__gte=first_hour
    )
    failures = _per_hour(failed_runs, "started_at")
    peak = max([*events.values(), *failures.values(), 1])
    bars = []
    for index in range(HOURS):
        start = first_hour + timedelta(hours=index)
        key = _hour_key(start)
        count, failed = events.get(key, 0), failures.get(key, 0)
        bars.append(
            Bar(
                start=start,
                events=count,
                failures=failed,
                x=index * (BAR_WIDTH + BAR_GAP),
                events_height=_height(count, peak),
                failures_height=_height(failed, peak),
            )
        )
    failing = (
        failed_runs.order_by()
        .values_list("handler")
        .annotate(n=Count("pk"))
        .order_by("-n", "handler")[:FAILING_HANDLERS_SHOWN]
    )
    recent = failed_runs.order_by("-started_at")[:RECENT_FAILURES_SHOWN]
    return Overview(
        bars=tuple(bars),
        since=first_hour,
        events=sum(events.values()),
        failures=sum(failures.values()),
        peak=peak,
        failing_handlers=tuple((handler, n) for handler, n in failing),
        recent_failures=tuple(recent),
        queue=queue(),
    )


def _per_hour(queryset: QuerySet[Any], field: str) -> dict[tuple[int, int, int, int], int]:
    rows = (
        queryset.order_by()
        .annotate(hour=TruncHour(field))
        .values("hour")
        .annotate(n=Count("pk"))
        .values_list("hour", "n")
    )
    return {_hour_key(timezone.localtime(hour)): n for hour, n in rows}


def _hour_key(moment: datetime) -> tuple[int, int, int, int]:
    return (moment.year, moment.month, moment.day, moment.hour)


def _height(count: int, peak: int) -> int:
    if not count:
        return 0
    return max(round(count / peak * CHART_HEIGHT), 2)
