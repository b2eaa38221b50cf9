"""Benchmark of fetch mode: events/s from ``imbot.v2.Event.get`` to stored, and to handlers done.

    .venv/bin/python bench/fetch.py                       # 10,000 events on SQLite
    .venv/bin/python bench/fetch.py -n 20000 --database postgres

What it does, in a throwaway database (a temporary SQLite file, or a fresh PostgreSQL database
``imbot_bench_fetch`` on ``postgres://postgres@127.0.0.1:5432/``, dropped at the end):

* starts :class:`~imbot_app.testing.FakeBitrix24` (a real HTTP server on 127.0.0.1, in this
  process, so its JSON encoding competes for the same CPU) with a connected portal and two
  fetch-mode v2 bots, and queues N ONIMBOTV2MESSAGEADD events for each (not timed);
* **stored**: polls the first bot with :func:`imbot_app.dispatch.fetch.poll_bot`
  (``limit=1000``) until its queue is empty: each poll is one Event.get over HTTP, then every
  event stored through the webhook's store (Event, Message, chat/user/bot rows, dedup on
  eventId) and the offset advanced, in one transaction;
* **handlers done**: the same for the second bot, each page then run through
  :func:`imbot_app.dispatch.runner.run_events` with one no-op ``on_event`` route (claim, context,
  HandlerRun, status), as the worker loop will.

Left out, and said so: the pauses Bitrix24 asks for (at least 2 s between calls while hasMore,
5-30 s when idle) and its rate limit of 2 requests/s (the portal's client-side bucket is set
wide open).  With them a bot gets at most 1,000 events per 2 s from Event.get, whatever this
prints.  Handlers get the typed contexts (a MessageContext per event, rebuilt from the
database), as in imbot_worker, where the fetch thread stores and the runners run them.
DEBUG is off.
This prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from databases import bench_project

ROOT = Path(__file__).resolve().parent.parent

LIMIT = 1000
GOAL_PER_SECOND = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--events", type=int, default=10_000, help="events per phase")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    # (IMBOT_BENCH_FETCH_DB: another name, when two checkouts bench on one server at once.)
    name = os.environ.get("IMBOT_BENCH_FETCH_DB", "imbot_bench_fetch")
    with bench_project(args.database, name):
        run(args)


def _queue(fake: Any, events: Any, count: int) -> None:
    for number in range(count):
        event = events.message_add(f"event {number}", group=True, message_id=10_000_000 + number)
        fake.v2.enqueue(events.member_id, events.bot_id, event.type, event.data)


def run(args: argparse.Namespace) -> None:
    from django.db import connection

    from imbot_app.dispatch import fetch
    from imbot_app.dispatch.claims import Outcome
    from imbot_app.dispatch.routing import router
    from imbot_app.dispatch.runner import run_events
    from imbot_app.models import Bot, Event, Portal
    from imbot_app.testing import FakeBitrix24, V2EventFactory

    with FakeBitrix24() as fake:
        first = V2EventFactory.connected(fake, code="bench_store")
        Portal.objects.filter(member_id=first.member_id).update(rate_limit=1e6, rate_burst=10**6)
        second_id = fake.v2.add_bot(first.member_id, "bench_handlers")
        portal = Portal.objects.get(member_id=first.member_id)
        Bot.objects.create(portal=portal, bot_id=second_id, code="bench_handlers")
        second = V2EventFactory(
            member_id=first.member_id, bot_id=second_id, bot_code="bench_handlers"
        )
        second.message_ids = iter(range(20_000_000, 30_000_000))
        _queue(fake, first, args.events)
        _queue(fake, second, args.events)
        print(f"{connection.vendor}: {args.events} events queued per bot, limit={LIMIT}")

        def drain(bot_id: int, handlers: bool) -> tuple[float, float, int, int, int]:
            state = fetch.state_for(Bot.objects.get(portal=portal, bot_id=bot_id))
            polls = stored = done = 0
            started = time.perf_counter()
            cpu = time.process_time()
            while True:
                result = fetch.poll_bot(state, limit=LIMIT)
                polls += 1
                if result.outcome not in (fetch.PollOutcome.POLLED, fetch.PollOutcome.EMPTY):
                    raise SystemExit(f"poll failed: {result.outcome} {result.error}")
                stored += result.stored
                if handlers and result.event_ids:
                    outcomes = [r.outcome for r in run_events(result.event_ids)]
                    done += sum(o == Outcome.PROCESSED for o in outcomes)
                if result.outcome == fetch.PollOutcome.EMPTY:
                    break
            return time.perf_counter() - started, time.process_time() - cpu, polls, stored, done

        seconds, cpu, polls, stored, _ = drain(first.bot_id, handlers=False)
        report("Event.get -> stored", stored, seconds, cpu, polls)

        with router.isolated() as routes:

            @routes.on_event("ONIMBOTV2MESSAGEADD")
            def noop(event: Any) -> None:
                """Nothing: imbot_app's own cost per event is what is timed."""

            seconds, cpu, polls, stored, done = drain(second_id, handlers=True)
        report("Event.get -> handlers done", done, seconds, cpu, polls)
        assert Event.objects.count() == 2 * args.events, "events lost or stored twice"


def report(what: str, count: int, seconds: float, cpu: float, polls: int) -> None:
    """Wall rate, and this process's CPU per event (the fake server's share included; the
    database server's, on PostgreSQL, not): on a busy machine the CPU figure is the steadier."""
    rate = count / seconds if seconds else 0.0
    verdict = "meets" if rate >= GOAL_PER_SECOND else "misses"
    print(
        f"  {what:<28} {count:>7} events in {seconds:6.2f} s = {rate:7.0f} events/s, "
        f"{1000 * cpu / max(count, 1):.2f} ms CPU/event ({polls} Event.get calls; {verdict} "
        f"the {GOAL_PER_SECOND}/s goal)"
    )


if __name__ == "__main__":
    main()
