"""What ``imbot_register`` and ``imbot_unregister`` share: which portals, a table per portal,
progress, and an exit status that says whether every portal worked.

Every portal is tried, whatever happened to the ones before it; the command fails (exit
status 1) afterwards if any did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.core.management.base import BaseCommand, CommandError

from imbot_app.lifecycle.plans import Plan
from imbot_app.logsafe import safe
from imbot_app.models import Portal

logger = logging.getLogger("imbot_app.management")

HEADERS = ("action", "bot", "target", "result")


def select_portals(member_id: str | None) -> list[Portal]:
    """The portal with ``member_id``, or every portal that has not uninstalled the app."""
    if member_id:
        portal = Portal.objects.filter(member_id=member_id).first()
        if portal is None:
            raise CommandError(f"no portal with member_id {member_id!r} is known")
        return [portal]
    return list(
        Portal.objects.exclude(status=Portal.Status.UNINSTALLED).order_by("domain", "member_id")
    )


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = HEADERS) -> list[str]:
    """Plain-text columns: a header, a rule, then the rows (no trailing blanks)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def run_portals(
    command: BaseCommand,
    portals: Sequence[Portal],
    work: Callable[[Portal], Plan],
    *,
    verbosity: int = 1,
) -> int:
    """Run ``work`` on each portal, print what it did, return how many portals failed."""
    failed = 0
    total = len(portals)
    for index, portal in enumerate(portals, start=1):
        header = f"[{index}/{total}] {portal.domain or '?'} ({portal.member_id})"
        try:
            plan = work(portal)
        except Exception as exc:
            logger.exception("portal %s: unexpected error", safe(str(portal)))
            failed += 1
            command.stdout.write(header)
            command.stdout.write(command.style.ERROR(f"  FAILED: {type(exc).__name__}: {exc}"))
            continue
        if not plan.ok:
            failed += 1
        if verbosity >= 1 or not plan.ok:
            _report(command, header, plan)
    return failed


def _report(command: BaseCommand, header: str, plan: Plan) -> None:
    out = command.stdout
    out.write(header)
    rows = [row for row in plan.rows() if row[0] != "unchanged"]
    if rows:
        for text in format_table(rows):
            out.write("  " + text)
    elif plan.ok:
        out.write("  nothing to do")
    if plan.unchanged:
        names = ", ".join(" ".join(p for p in entry if p) for entry in plan.unchanged)
        out.write(f"  unchanged: {names}")
    for note in plan.notes:
        out.write(command.style.WARNING(f"  note: {note}"))
    if plan.error:
        verb = "would fail" if plan.dry_run else "FAILED"
        out.write(command.style.ERROR(f"  {verb}: {plan.error}"))


def finish(command: BaseCommand, total: int, failed: int, *, dry_run: bool) -> None:
    """Print the tally; raise CommandError (exit status 1) if any portal failed."""
    noun = "portal" if total == 1 else "portals"
    if dry_run:
        summary = f"{total} {noun}: dry run, nothing was sent to Bitrix24"
        if failed:
            summary += f"; {failed} would fail"
    else:
        summary = f"{total} {noun}: {total - failed} ok, {failed} failed"
    if failed:
        raise CommandError(summary)
    command.stdout.write(command.style.SUCCESS(summary))
