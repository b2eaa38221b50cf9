"""``manage.py imbot_worker``: run the handlers of stored events, off the request path.

    manage.py imbot_worker                      # until SIGTERM / Ctrl-C
    manage.py imbot_worker --concurrency 4      # four runner threads (slow, I/O-bound handlers)
    manage.py imbot_worker --once               # run what is waiting, then exit 0 (cron, tests)
    manage.py imbot_worker --max-events 10000   # exit after that many (recycle the process)
    manage.py imbot_worker --no-fetch           # leave Event.get polling to other workers

For ``IMBOT_DISPATCH = "worker"``: the Event table is the queue (see
:mod:`imbot_app.dispatch.worker`).
On PostgreSQL run as many as you like, on as many machines; on SQLite run one.  With
``IMBOT_DISPATCH = "celery"`` it runs the sweep that re-sends stranded events instead.
Either way it also polls ``imbot.v2.Event.get`` for every fetch-mode Chatbots 2.0 bot (one
poller per bot across all workers; :mod:`imbot_app.dispatch.worker.fetching`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from imbot_app.dispatch.worker.loop import Options, Worker

MAX_CONCURRENCY = 64
MAX_BATCH = 1000


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type accepting ``kind`` values in ``[low, high]`` only."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from exc
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    convert.__name__ = kind.__name__
    return convert


class Command(BaseCommand):
    help = "Run the handlers of stored events (IMBOT_DISPATCH = 'worker'); Celery mode: sweep."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=bounded(int, 1, MAX_CONCURRENCY),
            default=1,
            help="runner threads (default 1)",
        )
        parser.add_argument(
            "--once", action="store_true", help="run the events waiting now, then exit"
        )
        parser.add_argument(
            "--max-events",
            type=bounded(int, 1, 10**12),
            default=None,
            help="exit after running this many events",
        )
        parser.add_argument(
            "--idle-sleep",
            type=bounded(float, 0.01, 3600),
            default=None,
            metavar="SECONDS",
            help="seconds between polls when idle (default IMBOT_WORKER_POLL)",
        )
        parser.add_argument(
            "--log-every",
            type=bounded(float, 1, 86_400),
            default=60.0,
            metavar="SECONDS",
            help="a status line this often (default 60)",
        )
        parser.add_argument(
            "--batch-size",
            type=bounded(int, 1, MAX_BATCH),
            default=None,
            help="events claimed per fetch (default IMBOT_WORKER_BATCH)",
        )
        parser.add_argument(
            "--no-listen", action="store_true", help="PostgreSQL: poll instead of LISTEN"
        )
        parser.add_argument(
            "--no-fetch",
            action="store_true",
            help="do not poll imbot.v2.Event.get for fetch-mode bots (another worker does)",
        )
        parser.add_argument(
            "--fetch-limit",
            type=bounded(int, 1, MAX_BATCH),
            default=None,
            help="events per Event.get call, 1-1000 (default IMBOT_FETCH_LIMIT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker(
            Options(
                concurrency=options["concurrency"],
                once=options["once"],
                max_events=options["max_events"],
                idle_sleep=options["idle_sleep"],
                log_every=options["log_every"],
                batch_size=options["batch_size"],
                listen=not options["no_listen"],
                fetch=not options["no_fetch"],
                fetch_limit=options["fetch_limit"],
            ),
            say=self._say,
        )
        status = worker.run()
        if status:
            raise CommandError("a runner stopped on an error (see the log above)")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
