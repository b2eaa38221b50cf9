"""``manage.py imbot_unregister``: remove this app's bots from installed portals.

``imbot.unregister`` deletes a bot with its commands, and Bitrix24 deletes its private chats
with people, so the command asks first (``--noinput`` for scripts) and ``--dry-run`` only
prints what it would do.  The Bot rows, chats and messages stay in the database, the bots
marked deleted; ``imbot_register`` registers a declared bot again.  Every portal is tried; the
exit status is 1 if any failed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from imbot_app.lifecycle.plans import plan_unregister
from imbot_app.lifecycle.registration import unregister_portal
from imbot_app.management.portal_runs import finish, run_portals, select_portals


class Command(BaseCommand):
    help = "Unregister this app's bots (all, or --bot CODE) on one or every installed portal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--portal", metavar="MEMBER_ID", help="only this portal")
        parser.add_argument(
            "--bot",
            metavar="CODE",
            action="append",
            dest="bots",
            help="only the bot with this code (repeatable); default: every bot",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done; call nothing"
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        portals = select_portals(options["portal"])
        codes: list[str] | None = options["bots"]
        dry_run = options["dry_run"]
        if not portals:
            self.stdout.write("No installed portals.")
            return
        if not dry_run and options["interactive"]:
            self.confirm(portals, codes)
        failed = run_portals(
            self,
            portals,
            lambda portal: unregister_portal(portal, codes=codes, dry_run=dry_run),
            verbosity=options["verbosity"],
        )
        finish(self, len(portals), failed, dry_run=dry_run)

    def confirm(self, portals: list[Any], codes: list[str] | None) -> None:
        bots = sum(len(plan_unregister(portal, codes).actions) for portal in portals)
        if not bots:
            return
        answer = input(
            f"This unregisters {bots} bot(s) on {len(portals)} portal(s); Bitrix24 deletes "
            "their private chats with people.\nType 'yes' to continue: "
        )
        if answer.strip().lower() != "yes":
            raise CommandError("cancelled")
