"""``manage.py imbot_replay``: run stored events' handlers again, e.g. after fixing a bug.

    manage.py imbot_replay --status failed --since 2h          # retry what failed lately
    manage.py imbot_replay --id 812 --id 813 --force            # run these again, whatever
    manage.py imbot_replay --event ONIMCOMMANDADD --portal a223c6b3... --since 2025-03-01
    manage.py imbot_replay --since 1d --dry-run                 # what would run, and which handlers

Without ``--force`` failed events resume (handlers that succeeded are not run again) and
received ones run for the first time; ``--force`` runs every handler of processed events too.
A summary ends the run; the exit status is 1 when any event failed.  Each failed handler is
one line on stderr; ``-v 2`` adds every event's outcome and the handlers' tracebacks.  A dry
run counts as "would run" only the events some handler would run for.  See
:mod:`imbot_app.dispatch.replay`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from imbot_app.dispatch.loading import ContextUnavailable
from imbot_app.dispatch.replay import (
    DEFAULT_CHUNK_SIZE,
    ReplayResult,
    ReplaySummary,
    Selection,
    iter_event_statuses,
    planned_handlers,
    replay_chunk,
    would_run,
)
from imbot_app.management.commands._arguments import moment, repeatable
from imbot_app.management.commands._quiet import tracebacks_only_when_verbose
from imbot_app.management.commands._wording import plural
from imbot_app.management.progress import ProgressBar
from imbot_app.models import Event

MAX_FAILURES_SHOWN = 20


class Command(BaseCommand):
    help = "Run the handlers of stored events again (failed and unfinished ones by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        repeatable(parser, "--id", "ids", "an event id (repeatable)", type=int, metavar="ID")
        parser.add_argument(
            "--since",
            type=moment,
            help="received at or after: 2h, 3d, 2025-03-01, 2025-03-01T10:30",
        )
        parser.add_argument("--until", type=moment, help="received before (same formats)")
        repeatable(
            parser,
            "--event",
            "names",
            "Bitrix24 event name, e.g. ONIMBOTMESSAGEADD (repeatable)",
            metavar="NAME",
        )
        repeatable(
            parser,
            "--portal",
            "member_ids",
            "the portal's member_id (repeatable)",
            metavar="MEMBER_ID",
        )
        repeatable(
            parser,
            "--status",
            "statuses",
            "only events with this status (repeatable); default: received and failed, "
            "plus processed with --force",
            choices=[s.value for s in Event.Status],
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="run every handler again, also of processed events and handlers that succeeded",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list the events and the handlers that would run; run nothing",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=DEFAULT_CHUNK_SIZE,
            help=f"event ids read per query (default {DEFAULT_CHUNK_SIZE})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        selection = Selection(
            ids=tuple(options["ids"]),
            since=options["since"],
            until=options["until"],
            names=tuple(options["names"]),
            member_ids=tuple(options["member_ids"]),
            statuses=tuple(options["statuses"]),
            force=options["force"],
        )
        events = selection.queryset()
        chunks = iter_event_statuses(events, chunk_size=max(options["chunk_size"], 1))
        if options["dry_run"]:
            self.dry_run(chunks, force=selection.force)
            return
        verbosity = options["verbosity"]
        with tracebacks_only_when_verbose(verbosity):
            self.replay(events.count(), chunks, force=selection.force, verbosity=verbosity)

    # ---------------------------------------------------------------- replay

    def replay(self, total: int, chunks: Any, *, force: bool, verbosity: int) -> None:
        summary = ReplaySummary()
        bar = ProgressBar.for_command(self.stderr, total, label="replay") if verbosity else None
        for chunk in chunks:
            for result in replay_chunk(chunk, force=force):
                summary.add(result)
                if verbosity >= 2:
                    self.report(result)
                if bar is not None:
                    bar.advance()
        if bar is not None:
            bar.finish()
        for failure in summary.failures[:MAX_FAILURES_SHOWN]:
            for detail in failure.handler_errors or (failure.detail,):
                self.stderr.write(f"event {failure.event_id} failed: {detail}")
        if summary.failed > MAX_FAILURES_SHOWN:
            self.stderr.write(f"... and {summary.failed - MAX_FAILURES_SHOWN} more failures")
        self.stdout.write(f"Replayed {plural(summary.total, 'event')}: {summary.describe()}")
        if summary.failed:
            raise CommandError(f"{plural(summary.failed, 'event')} failed", returncode=1)

    def report(self, result: ReplayResult) -> None:
        detail = f": {result.detail}" if result.detail else ""
        self.stdout.write(f"event {result.event_id} {result.status}{detail}")

    # ---------------------------------------------------------------- dry run

    def dry_run(self, chunks: Any, *, force: bool) -> None:
        would, skipped = 0, 0
        for chunk in chunks:
            ids = [event_id for event_id, _ in chunk]
            for event in Event.objects.filter(pk__in=ids).select_related("portal").order_by("pk"):
                line = (
                    f"#{event.pk} {event.name} {event.status} "
                    f"{event.received_at:%Y-%m-%d %H:%M:%S} {event.portal}"
                )
                reason = would_run(event, force=force)
                runs, plan = (False, f"skip, {reason}") if reason else self.plan(event)
                if runs:
                    would += 1
                else:
                    skipped += 1
                self.stdout.write(f"{line}: {plan}")
        self.stdout.write(
            f"Dry run: {plural(would, 'event')} would run, {skipped} would be skipped"
        )

    @staticmethod
    def plan(event: Event) -> tuple[bool, str]:
        """Whether a replay would run anything for ``event``, and what."""
        try:
            handlers = planned_handlers(event)
        except ContextUnavailable as exc:
            return True, f"would fail: {exc}"
        if not handlers:
            return False, "skip, no handler matches"
        return True, "runs " + ", ".join(handlers)
