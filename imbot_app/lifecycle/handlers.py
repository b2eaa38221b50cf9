"""What imbot_app itself does when a portal installs, updates or uninstalls the application.

Three built-in handlers on the application signals:

- ONAPPINSTALL: register the declared bots and commands (:func:`register_declared_bots`);
- ONAPPUPDATE: sync them again, binding the application events anew (an application update
  may drop the handlers bound by the previous version);
- ONAPPUNINSTALL with ``CLEAN=1`` (the user asked to delete the application's data): delete
  the portal's messages, command invocations and chat users, and scrub the personal data out
  of its stored events (:func:`forget_portal_data`).

They are ordinary handlers run by the dispatcher, which is why they live here rather than in
the webhook or the store: they run after the event's transaction has committed (never inside
it, never delaying Bitrix24's 200), inline or on a Celery worker as ``IMBOT_DISPATCH`` says,
each run recorded as a :class:`~imbot_app.models.HandlerRun`, and a failed one is retried with
a replay.  A failed registration raises :class:`RegistrationFailed`, so the event is marked
failed with the reason in ``Event.error``, while :mod:`imbot_app.lifecycle.registration` has put the
same reason in ``Portal.registration_error``; the installation itself, stored by the webhook,
stands.  A missing ``IMBOT_PUBLIC_URL`` is not a failure but a state (normal before the site
has a public address): see :mod:`imbot_app.lifecycle.registration_wait`.

The routes are connected to the signals directly (:func:`connect`, called when Django starts),
not through the router, so a test's ``router.isolated()`` keeps them.  Registration runs
first (priority 1000): the bots exist before a project's own install handlers run.  The data
clean-up runs last (priority -1000), after the project's own uninstall handlers; one of those
that calls ``stop()`` skips it.  A route whose condition does not hold (the setting is off,
nothing is declared, CLEAN=0) leaves no HandlerRun.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from imbot_app import signals
from imbot_app.conf import imbot_settings
from imbot_app.dispatch.context import AppContext
from imbot_app.dispatch.routing import NO_ARGUMENTS, Match, Route
from imbot_app.errors import ImbotError
from imbot_app.lifecycle.bots import declared_bots
from imbot_app.lifecycle.registration import sync_portal
from imbot_app.lifecycle.registration_wait import wait_for_public_url
from imbot_app.lifecycle.specs import DeclarationError
from imbot_app.logsafe import safe
from imbot_app.models import ChatUser, CommandInvocation, Event, Message, Portal

logger = logging.getLogger("imbot_app.lifecycle")

REDACTED = "[redacted]"
# Events whose data holds nothing personal (versions, language, CLEAN): kept as they are.
APP_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"})
SCRUB_BATCH = 500


class RegistrationFailed(ImbotError):
    """Registering the declared bots on a portal failed; the message says where and why."""


# --------------------------------------------------------------------------- handlers


def register_declared_bots(app: AppContext) -> None:
    """ONAPPINSTALL: register every declared bot and command on the portal."""
    _sync(app.portal, rebind=False)


def resync_declared_bots(app: AppContext) -> None:
    """ONAPPUPDATE: send the declarations again and bind the application events anew."""
    _sync(app.portal, rebind=True)


def _sync(portal: Portal, *, rebind: bool) -> None:
    if wait_for_public_url(portal):
        return  # one warning line and a state on the portal, not a failed install
    if rebind and portal.bound_events:
        Portal.objects.filter(pk=portal.pk).update(bound_events={})
        portal.bound_events = {}
    try:
        plan = sync_portal(portal)
    except Exception as exc:
        # IMBOT_PUBLIC_URL or the declarations are unusable, or something unexpected broke:
        # the portal shows it too, not only the event.
        message = f"cannot register the declared bots: {exc}"
        Portal.objects.filter(pk=portal.pk).update(registration_error=message)
        if isinstance(exc, ImproperlyConfigured):
            raise RegistrationFailed(message) from exc
        raise
    if plan.error:
        raise RegistrationFailed(plan.error)
    logger.info(
        "portal %s: declared bots registered (%d actions, %d unchanged)",
        safe(str(portal)),
        len(plan.actions),
        len(plan.unchanged),
    )


def clean_portal_data(app: AppContext) -> None:
    """ONAPPUNINSTALL with CLEAN=1: the user asked Bitrix24 to delete the application's data."""
    counts = forget_portal_data(app.portal)
    logger.info("portal %s uninstalled with CLEAN=1: deleted %s", safe(str(app.portal)), counts)


def forget_portal_data(portal: Portal) -> dict[str, int]:
    """Delete what people wrote and who they are; keep the events, their data scrubbed.

    Messages, command invocations (their params are typed text) and chat users are deleted;
    every event but the application's own lifecycle events keeps its name, time and status
    but its ``data`` (message texts, names) is replaced by ``"[redacted]"``.  Chats, bots and
    commands stay: they hold no more than ids and titles.
    """
    with transaction.atomic():
        invocations, _ = CommandInvocation.objects.filter(command__portal=portal).delete()
        messages, _ = Message.objects.filter(portal=portal).delete()
        users, _ = ChatUser.objects.filter(portal=portal).delete()
        scrubbed = _scrub_events(portal)
    return {
        "messages": messages,
        "command invocations": invocations,
        "chat users": users,
        "events scrubbed": scrubbed,
    }


def _scrub_events(portal: Portal) -> int:
    events = (
        Event.objects.filter(portal=portal)
        .exclude(name__in=APP_EVENTS)
        .only("pk", "payload")
        .order_by("pk")
    )
    scrubbed = 0
    batch: list[Event] = []
    for event in events.iterator(chunk_size=SCRUB_BATCH):
        payload = event.payload if isinstance(event.payload, dict) else {}
        if payload.get("data") == REDACTED:
            continue
        event.payload = {**payload, "data": REDACTED}
        batch.append(event)
        if len(batch) >= SCRUB_BATCH:
            Event.objects.bulk_update(batch, ["payload"])
            scrubbed += len(batch)
            batch = []
    if batch:
        Event.objects.bulk_update(batch, ["payload"])
        scrubbed += len(batch)
    return scrubbed


# --------------------------------------------------------------------------- conditions


def _when_registering(app: Any) -> Match | None:
    """Run when IMBOT_REGISTER_ON_INSTALL is on and something is declared.

    Invalid declarations count as "something": the handler then runs and fails, so the
    problem shows on the event and the portal instead of passing in silence.
    """
    if not imbot_settings.REGISTER_ON_INSTALL:
        return None
    try:
        declared = declared_bots()
    except DeclarationError:
        return NO_ARGUMENTS
    return NO_ARGUMENTS if declared else None


def _when_cleaning(app: Any) -> Match | None:
    return NO_ARGUMENTS if imbot_settings.HONOR_CLEAN and getattr(app, "clean", False) else None


ROUTES = (
    Route(
        register_declared_bots,
        signals.app_installed,
        "app",
        priority=1000,
        matcher=_when_registering,
        description="imbot_app: register the declared bots",
    ),
    Route(
        resync_declared_bots,
        signals.app_updated,
        "app",
        priority=1000,
        matcher=_when_registering,
        description="imbot_app: sync the declared bots",
    ),
    Route(
        clean_portal_data,
        signals.app_uninstalled,
        "app",
        priority=-1000,
        matcher=_when_cleaning,
        description="imbot_app: delete the portal's data (CLEAN=1)",
    ),
)


def connect() -> None:
    """Connect the built-in routes (idempotent: called from ``AppConfig.ready``)."""
    for route in ROUTES:
        route.signal.connect(route, weak=False, dispatch_uid=route.path)
