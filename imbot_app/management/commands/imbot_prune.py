"""``manage.py imbot_prune --older-than 30d``: delete old events and their handler runs.

    manage.py imbot_prune --older-than 30d                 # e.g. daily from cron
    manage.py imbot_prune --older-than 90d --keep-failed   # keep failures for a later replay
    manage.py imbot_prune --older-than 7d --dry-run        # only count
    manage.py imbot_prune --older-than 2h --force          # under a day needs --force

Messages, command invocations, chats and people stay: they are the history.  See
:mod:`imbot_app.management.retention`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, QuerySet
from django.utils import timezone

from imbot_app.management.commands._arguments import duration
from imbot_app.management.commands._wording import plural
from imbot_app.management.progress import ProgressBar
from imbot_app.management.retention import DEFAULT_BATCH_SIZE, expired_events, prune_events
from imbot_app.models import Event, HandlerRun

# Events younger than this are what a replay needs and what an operator is looking at: a typo
# ("0d", "12h" for "12d") must not delete them without a second word.
MIN_AGE_WITHOUT_FORCE = timedelta(days=1)


class Command(BaseCommand):
    help = "Delete events (and their handler runs) older than a given age; history stays."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            required=True,
            metavar="AGE",
            help="received longer ago than this: 30d, 12h, 2w",
        )
        parser.add_argument(
            "--keep-failed", action="store_true", help="keep failed events (to replay them)"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--force",
            action="store_true",
            help=f"allow --older-than under {MIN_AGE_WITHOUT_FORCE.days} day (recent events)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"events deleted per transaction (default {DEFAULT_BATCH_SIZE})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < MIN_AGE_WITHOUT_FORCE and not options["force"]:
            raise CommandError(
                "--older-than under a day would delete events received in the last hours, "
                "which a replay may still need; add --force if that is what you mean"
            )
        cutoff = timezone.now() - options["older_than"]
        events = expired_events(cutoff, keep_failed=options["keep_failed"])
        if options["dry_run"]:
            self.stdout.write(self.describe_dry_run(events, cutoff))
            return
        total = events.count()
        bar = None
        if options["verbosity"]:
            bar = ProgressBar.for_command(self.stderr, total, label="prune")
        summary = prune_events(
            events,
            batch_size=max(options["batch_size"], 1),
            on_batch=bar.advance if bar is not None else None,
        )
        if bar is not None:
            bar.finish()
        self.stdout.write(
            f"Deleted {plural(summary.events, 'event')} {_received_before(cutoff)} "
            f"and {plural(summary.handler_runs, 'handler run')}"
        )

    @staticmethod
    def describe_dry_run(events: QuerySet[Event], cutoff: datetime) -> str:
        by_status = dict(
            events.order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        total = sum(by_status.values())
        runs = HandlerRun.objects.filter(event__in=events.values("pk")).count()
        detail = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        return (
            f"Dry run: would delete {plural(total, 'event')} {_received_before(cutoff)}"
            + (f" ({detail})" if detail else "")
            + f" and their {plural(runs, 'handler run')}; messages and invocations stay"
        )


def _received_before(cutoff: datetime) -> str:
    return f"received before {timezone.localtime(cutoff):%Y-%m-%d %H:%M:%S %Z}"
