"""``manage.py imbot_register``: register or update the declared bots on installed portals.

Idempotent: it sends only what changed since the last run (new bots and commands, changed
declarations, commands no longer declared, application events not yet bound), so running it
after every deployment is safe.  ``--dry-run`` prints the plan without calling Bitrix24;
``--force`` sends everything again, changed or not.  Every portal is tried; the exit status is
1 if any failed.  The work itself is :func:`imbot_app.lifecycle.registration.sync_portal`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from imbot_app.lifecycle.bots import declared_bots, handler_url
from imbot_app.lifecycle.registration import sync_portal
from imbot_app.management.portal_runs import finish, run_portals, select_portals
from imbot_app.outbound.webhook import (
    WebhookUrlError,
    ensure_portal,
    generate_client_id,
    webhook_config,
)


class Command(BaseCommand):
    help = "Register or update the declared bots and commands on one or every installed portal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--portal", metavar="MEMBER_ID", help="only this portal")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done; call nothing"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="send every bot, command and event binding again, changed or not",
        )
        parser.add_argument(
            "--generate-client-id",
            action="store_true",
            help="print a new random CLIENT_ID for IMBOT_WEBHOOK_CLIENT_ID and exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_client_id"]:
            self.stdout.write(generate_client_id())
            return
        try:
            specs = declared_bots()
            url = handler_url()
            hook = webhook_config(strict=True)
        except (ImproperlyConfigured, WebhookUrlError) as exc:
            raise CommandError(str(exc)) from exc
        if not specs:
            raise CommandError(
                "no bots are declared: set IMBOT_BOTS or call imbot_app.lifecycle.bots.declare()"
            )
        if hook is not None and not options["dry_run"]:
            # Webhook mode: the portal is known by the webhook's domain until its first event.
            ensure_portal(hook)
        portals = select_portals(options["portal"])
        dry_run, force = options["dry_run"], options["force"]
        verbosity = options["verbosity"]
        if verbosity >= 1:
            self.stdout.write(f"Handler URL: {url}")
            for spec in specs:
                words = ", ".join(f"/{c.command}" for c in spec.command_specs) or "no commands"
                self.stdout.write(f"Bot {spec.code} ({spec.type}): {words}")
        if not portals:
            self.stdout.write("No installed portals.")
            return
        failed = run_portals(
            self,
            portals,
            lambda portal: sync_portal(portal, specs=specs, dry_run=dry_run, force=force),
            verbosity=verbosity,
        )
        finish(self, len(portals), failed, dry_run=dry_run)
