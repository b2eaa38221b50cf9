"""Benchmark of replay: how fast ``imbot_replay`` runs stored events through their handlers.

    .venv/bin/python bench/replay.py                          # 20,000 events on SQLite
    .venv/bin/python bench/replay.py -n 5000 --database postgres
    .venv/bin/python bench/replay.py --profile 25             # where the time goes (cProfile)
    .venv/bin/python bench/replay.py --kind generic           # an event type with no rows

What it does, in a throwaway database (a temporary SQLite file, or a fresh PostgreSQL database
``imbot_bench_replay`` on ``postgres://postgres@127.0.0.1:5432/``, dropped at the end):

* stores one installed portal, its bot, one chat and one person, then N events with
  ``bulk_create`` (not timed): by default ONIMBOTMESSAGEADD events, each with its Message
  row, their payloads built by the test kit and redacted as the store redacts them; with
  ``--kind generic`` an event type imbot_app has no class for (no rows to look up);
* replaces every handler with one no-op ``on_event`` route, so what is measured is imbot_app's
  own work per event: the claim, rebuilding the context from the database, the HandlerRun
  record, the final status;
* runs them the way a replay does
  (:func:`imbot_app.dispatch.replay.iter_event_statuses` in chunks, each through
  :func:`imbot_app.dispatch.replay.replay_chunk`; ``--per-event`` uses
  :func:`imbot_app.dispatch.replay.replay_event` per event instead) and prints events/s, SQL
  statements per event (BEGIN/COMMIT not counted) and the process's peak RSS before and
  after, to show memory stays flat however many events there are.

DEBUG is off, as in production (with DEBUG on Django keeps every query in memory).  This
prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databases import bench_project

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "imbot_bench_replay"
TARGET_PER_SECOND = 1000
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
GENERIC_EVENT = "ONBENCHNOOP"
COUNTED_SAMPLE = 200  # events replayed apart, with every SQL statement counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--events", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kind", choices=("message", "generic"), default="message")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument(
        "--per-event", action="store_true", help="replay_event per event, not replay_chunk"
    )
    parser.add_argument("--profile", type=int, metavar="N", default=0, help="top N functions")
    args = parser.parse_args()

    with bench_project(args.database, PG_DATABASE):
        run(args)


def run(args: argparse.Namespace) -> None:
    from django.db import connection

    from imbot_app.dispatch.replay import (
        ReplaySummary,
        Selection,
        iter_event_statuses,
        replay_chunk,
        replay_event,
    )
    from imbot_app.dispatch.routing import router
    from imbot_app.models import Event, HandlerRun

    def replay_all(summary: ReplaySummary) -> None:
        """A resume replay of the received events, chunk by chunk."""
        for chunk in iter_event_statuses(Selection().queryset(), chunk_size=args.chunk_size):
            if args.per_event:
                for event_id, status in chunk:
                    summary.add(replay_event(event_id, force=False, status=status))
            else:
                for result in replay_chunk(chunk, force=False):
                    summary.add(result)

    scene = Scene.create()
    started = time.perf_counter()
    scene.store_events(args.events, kind=args.kind)
    stored_in = time.perf_counter() - started
    how = "replay_event per event" if args.per_event else "replay_chunk"
    print(
        f"stored {args.events} {args.kind} events with bulk_create in {stored_in:.1f} s "
        f"({connection.vendor}; replayed with {how})"
    )

    summary = ReplaySummary()
    rss_before = peak_rss_mib()
    profiler = cProfile.Profile() if args.profile else None
    with router.isolated() as routes:

        @routes.on_event(GENERIC_EVENT, "ONIMBOTMESSAGEADD")
        def noop(event: Any) -> None:
            """The handler: nothing, so imbot_app's own cost is what is timed."""

        started = time.perf_counter()
        cpu_started = time.process_time()
        if profiler is not None:
            profiler.enable()
        replay_all(summary)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        rss_after = peak_rss_mib()

        # Statements are counted on a further sample, apart: wrapping every execute() would
        # slow the timed run down.
        scene.store_events(COUNTED_SAMPLE, kind=args.kind)
        counter = StatementCounter()
        with connection.execute_wrapper(counter):
            replay_all(ReplaySummary())

    assert summary.processed == args.events, summary.describe()
    assert HandlerRun.objects.filter(status="succeeded").count() == args.events + COUNTED_SAMPLE
    assert not Event.objects.exclude(status="processed").exists()
    rate = args.events / seconds
    print(f"replayed {summary.total} events: {summary.describe()}")
    print(
        f"{rate:,.0f} events/s ({seconds:.2f} s wall, {cpu / args.events * 1000:.3f} ms CPU "
        f"and {seconds / args.events * 1000:.3f} ms wall per event), target "
        f"{TARGET_PER_SECOND:,}/s: {'met' if rate >= TARGET_PER_SECOND else 'NOT met'}"
    )
    print(
        f"SQL statements per event: {counter.data / COUNTED_SAMPLE:.2f} "
        f"({counter.reads / COUNTED_SAMPLE:.2f} reads, "
        f"{counter.writes / COUNTED_SAMPLE:.2f} writes; BEGIN/COMMIT not counted; "
        f"over {COUNTED_SAMPLE} more events)"
    )
    print(f"peak RSS: {rss_before:.1f} MiB before the replay, {rss_after:.1f} MiB after")
    if profiler is not None:
        print_profile(profiler, args.profile)


# ------------------------------------------------------------------------------ storing


@dataclass
class Scene:
    """One installed portal with its bot, a private chat and the person in it."""

    factory: Any
    portal: Any
    bot: Any
    chat: Any
    person: Any
    stored: int = 0

    @classmethod
    def create(cls) -> Scene:
        from imbot_app.models import Bot, Chat, ChatUser, Portal
        from imbot_app.testing import EventFactory

        factory = EventFactory.installed()
        portal = Portal.objects.get(member_id=factory.member_id)
        bot = Bot.objects.create(portal=portal, bot_id=factory.bot_id, code=factory.bot_code)
        chat = Chat.objects.create(
            portal=portal, bot=bot, dialog_id=str(factory.user_id), type="P", title="bench"
        )
        person = ChatUser.objects.create(
            portal=portal, user_id=factory.user_id, name=factory.user_name
        )
        return cls(factory, portal, bot, chat, person)

    def store_events(self, count: int, *, kind: str) -> None:
        """``count`` more received events (and their Message rows), with bulk_create."""
        from django.utils import timezone

        from imbot_app.inbound.store import redact
        from imbot_app.models import Event, Message

        batch = 2000
        now = timezone.now()
        first = self.stored
        for start in range(first, first + count, batch):
            numbers = range(start, min(start + batch, first + count))
            rows = []
            for n in numbers:
                if kind == "message":
                    payload = self.factory.message(f"message {n}", message_id=100_000 + n)
                    name = "ONIMBOTMESSAGEADD"
                else:
                    payload = self.factory._envelope(GENERIC_EVENT, {"N": str(n)})
                    name = GENERIC_EVENT
                rows.append(
                    Event(
                        portal=self.portal,
                        name=name,
                        payload=redact(payload),
                        dedup_key=f"bench:{n}",
                        ts=now,
                        remote_addr="127.0.0.1",
                    )
                )
            events = Event.objects.bulk_create(rows)
            if kind == "message":
                Message.objects.bulk_create(
                    Message(
                        portal=self.portal,
                        chat=self.chat,
                        bot=self.bot,
                        author=self.person,
                        event=event,
                        message_id=100_000 + n,
                        text=f"message {n}",
                    )
                    for n, event in zip(numbers, events, strict=True)
                )
        self.stored += count


# ------------------------------------------------------------------------------ measuring


class StatementCounter:
    """A ``connection.execute_wrapper`` counting SQL statements, transaction control apart."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0

    @property
    def data(self) -> int:
        return self.reads + self.writes

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        head = sql[:16].lstrip().upper()  # only the start: upper() of a whole query costs
        if not head.startswith(TRANSACTION_CONTROL):
            if head.startswith("SELECT"):
                self.reads += 1
            else:
                self.writes += 1
        return execute(sql, params, many, context)


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    """imbot_app's own functions by cumulative time, then everything by own time."""
    for title, order, restrictions in (
        ("imbot_app's functions, by cumulative time", "cumulative", ("imbot_app", top)),
        ("all functions, by own time", "tottime", (top,)),
    ):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(order)
        stats.print_stats(*restrictions)
        body = out.getvalue()
        print(f"\nwhere the time goes (cProfile; {title}):")
        print(body[body.find("   ncalls") :].replace(str(ROOT) + "/", ""))


if __name__ == "__main__":
    main()
