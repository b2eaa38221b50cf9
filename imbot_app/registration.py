"""Registering the declared bots and commands on a portal: a plan of actions, then applying it.

:func:`plan_sync` compares the declarations (:mod:`imbot_app.bots`) with what the database says
is registered on a portal and lists the actions that would bring Bitrix24 in line.  It reads
the database only, so a dry run is a printed plan.  :func:`apply` runs the actions one by one
with the installer's tokens (:class:`~imbot_app.rest.RestClient`) and stores each id Bitrix24
returns as soon as it has it: REST calls cannot be rolled back, so the database follows
Bitrix24 step by step and a run that stops half-way is finished by the next one.
:func:`sync_portal` is the entry point the install handler, the install page and
``manage.py imbot_register`` share; it also records the outcome on the portal
(``registered_at``, or ``registration_error``).

What a sync does:

- a declared bot without a live Bot row (never registered, deleted by ONIMBOTDELETE, gone with
  an uninstall) is registered with ``imbot.register`` (Bitrix24 answers the existing id for a
  code it knows, so repeating it is harmless) and then sent its whole declaration with
  ``imbot.update``: that binds the message update/delete handlers ``imbot.register`` ignores
  for plain bots, and updates a bot Bitrix24 already had;
- a live bot whose declaration or handler URL changed is sent again with ``imbot.update``;
- a new command is registered; a changed one is updated with ``imbot.command.update``; one
  whose COMMON flag changed is unregistered and registered again (``imbot.command.update``
  cannot change COMMON); one no longer declared is unregistered;
- the application events in ``IMBOT_BIND_EVENTS`` not yet bound to the handler URL are bound
  with ``event.bind`` ("Handler already binded" counts as bound);
- bots no longer declared are kept and reported: unregistering a bot deletes its private
  chats, so only ``manage.py imbot_unregister`` does that;
- a bot or command Bitrix24 no longer knows (``BOT_ID_ERROR`` / ``COMMAND_ID_ERROR`` when it is
  updated) is marked deleted and the portal is planned again, so it is registered anew.

The first failing call stops the portal's run; the actions after it are reported as skipped.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import errors
from .bots import BotSpec, CommandSpec, declared_bots, handler_url
from .conf import imbot_settings
from .logsafe import safe, safe_text
from .models import Bot, Command, Credential, Portal
from .rest import RestClient
from .webhook import webhook_config

logger = logging.getLogger("imbot_app.registration")

__all__ = [
    "Action",
    "Plan",
    "Status",
    "Step",
    "apply",
    "bot_fingerprint",
    "check_portal",
    "command_fingerprint",
    "plan_sync",
    "plan_unregister",
    "sync_portal",
    "unregister_portal",
]


class Step(enum.StrEnum):
    """What one action does on the portal."""

    REGISTER_BOT = "register bot"
    UPDATE_BOT = "update bot"
    UNREGISTER_BOT = "unregister bot"
    REGISTER_COMMAND = "register command"
    UPDATE_COMMAND = "update command"
    REPLACE_COMMAND = "replace command"
    UNREGISTER_COMMAND = "unregister command"
    BIND_EVENT = "bind event"


#: The Bitrix24 methods each step calls, in order.
STEP_METHODS: dict[Step, tuple[str, ...]] = {
    Step.REGISTER_BOT: ("imbot.register", "imbot.update"),
    Step.UPDATE_BOT: ("imbot.update",),
    Step.UNREGISTER_BOT: ("imbot.unregister",),
    Step.REGISTER_COMMAND: ("imbot.command.register",),
    Step.UPDATE_COMMAND: ("imbot.command.update",),
    Step.REPLACE_COMMAND: ("imbot.command.unregister", "imbot.command.register"),
    Step.UNREGISTER_COMMAND: ("imbot.command.unregister",),
    Step.BIND_EVENT: ("event.bind",),
}


class Status(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Bitrix24 no longer knew the bot or command: marked deleted, the portal planned again.
    STALE = "stale"


@dataclass(eq=False)
class Action:
    """One step of a plan, and once applied, what came of it."""

    step: Step
    bot: str  # the bot's code ("" for application events)
    target: str = ""  # "/echo", "ONAPPUPDATE"
    reason: str = ""
    spec: BotSpec | None = None
    command: CommandSpec | None = None
    bot_row: Bot | None = None
    command_row: Command | None = None
    status: Status = Status.PLANNED
    outcome: str = ""

    @property
    def methods(self) -> tuple[str, ...]:
        return STEP_METHODS[self.step]

    def describe(self) -> str:
        return " ".join(part for part in (str(self.step), self.bot, self.target) if part)


@dataclass(eq=False)
class Plan:
    """What a sync (or an unregister) of one portal does or would do."""

    portal: Portal
    url: str = ""
    actions: list[Action] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)  # (bot code, target)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    dry_run: bool = False
    stale: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(action, bot, target, result) for each action, then the unchanged entries."""
        rows = [(str(a.step), a.bot, a.target, self._result(a)) for a in self.actions]
        rows.extend(("unchanged", bot, target, "") for bot, target in self.unchanged)
        return rows

    def _result(self, action: Action) -> str:
        if action.status == Status.PLANNED:
            if self.dry_run:
                return "would call " + ", ".join(action.methods)
            return "not run"
        text = str(action.status)
        return f"{text}: {action.outcome}" if action.outcome else text


class _Stale(Exception):
    """Bitrix24 no longer knows a bot or command the database holds as live."""


# --------------------------------------------------------------------------- what is sent


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def bot_fields(spec: BotSpec, url: str) -> dict[str, Any]:
    """``FIELDS`` for imbot.update: every handler the bot wants, and its PROPERTIES."""
    fields: dict[str, Any] = {
        "EVENT_MESSAGE_ADD": url,
        "EVENT_WELCOME_MESSAGE": url,
        "EVENT_BOT_DELETE": url,
    }
    if spec.message_edits:
        fields["EVENT_MESSAGE_UPDATE"] = url
        fields["EVENT_MESSAGE_DELETE"] = url
    fields["PROPERTIES"] = spec.properties_payload()
    return fields


def register_params(spec: BotSpec, url: str) -> dict[str, Any]:
    """imbot.register's parameters (update/delete handlers only where Bitrix24 honours them)."""
    params: dict[str, Any] = {
        "CODE": spec.code,
        "TYPE": spec.type,
        "OPENLINE": _yn(spec.openline),
        **bot_fields(spec, url),
    }
    if not spec.edits_bound_at_registration:
        params.pop("EVENT_MESSAGE_UPDATE", None)
        params.pop("EVENT_MESSAGE_DELETE", None)
    return params


def bot_fingerprint(spec: BotSpec, url: str) -> str:
    """Changes when anything imbot.update would send changes (TYPE and OPENLINE cannot)."""
    return _digest(bot_fields(spec, url))


def command_fields(command: CommandSpec, url: str) -> dict[str, Any]:
    """``FIELDS`` for imbot.command.update (everything but COMMON, which it cannot change)."""
    return {
        "COMMAND": command.command,
        "EVENT_COMMAND_ADD": url,
        "HIDDEN": _yn(command.hidden),
        "EXTRANET_SUPPORT": _yn(command.extranet),
        "LANG": command.lang(),
    }


def command_fingerprint(command: CommandSpec, url: str) -> str:
    return _digest(command_fields(command, url))


def _as_id(result: Any, method: str) -> int:
    if isinstance(result, bool) or not isinstance(result, int | str):
        raise errors.BitrixError("INVALID_RESULT", f"expected an id, got {result!r}", method=method)
    try:
        return int(result)
    except ValueError:
        raise errors.BitrixError(
            "INVALID_RESULT", f"expected an id, got {result!r}", method=method
        ) from None


# --------------------------------------------------------------------------- planning


def _live_bots(portal: Portal) -> dict[str, Bot]:
    """The portal's bots Bitrix24 should still have, by code (registered rows win)."""
    rows = (
        Bot.objects.filter(portal=portal, deleted_at__isnull=True)
        .exclude(code="")
        .order_by(F("registered_at").asc(nulls_first=True), "id")
    )
    return {row.code: row for row in rows}


def _live_commands(bots: Iterable[Bot]) -> dict[int, dict[str, Command]]:
    """The live commands of these bots: bot pk -> command word -> Command."""
    found: dict[int, dict[str, Command]] = {}
    rows = Command.objects.filter(bot__in=list(bots), deleted_at__isnull=True).order_by(
        F("registered_at").asc(nulls_first=True), "id"
    )
    for row in rows:
        assert row.bot_id is not None
        found.setdefault(row.bot_id, {})[row.command] = row
    return found


def _events_to_bind() -> list[str]:
    return [str(name).strip().upper() for name in imbot_settings.BIND_EVENTS or [] if name]


def plan_sync(
    portal: Portal,
    specs: Sequence[BotSpec] | None = None,
    *,
    url: str | None = None,
    force: bool = False,
) -> Plan:
    """The actions that would register or update ``specs`` (default: every declared bot).

    Reads the database only.  ``force`` sends every bot, command and event binding again,
    changed or not (to repair a portal changed behind the app's back).
    """
    specs = declared_bots() if specs is None else tuple(specs)
    url = handler_url() if url is None else url
    plan = Plan(portal=portal, url=url)
    live = _live_bots(portal)
    commands = _live_commands(live.values())
    for spec in specs:
        row = live.get(spec.code)
        if row is None:
            gone = Bot.objects.filter(
                portal=portal, code=spec.code, deleted_at__isnull=False
            ).exists()
            reason = "deleted on the portal" if gone else "new"
            plan.actions.append(Action(Step.REGISTER_BOT, spec.code, reason=reason, spec=spec))
            plan.actions.extend(
                Action(
                    Step.REGISTER_COMMAND,
                    spec.code,
                    f"/{command.command}",
                    reason="new",
                    spec=spec,
                    command=command,
                )
                for command in spec.command_specs
            )
            continue
        _plan_bot(plan, spec, row, force)
        _plan_commands(plan, spec, row, commands.get(row.pk, {}), force)
    declared = {spec.code for spec in specs}
    for code, row in sorted(live.items()):
        if code not in declared and row.registered_at is not None:
            plan.notes.append(
                f"bot {code} (#{row.bot_id}) is no longer declared; it is kept "
                f"(manage.py imbot_unregister --bot {code} removes it and its private chats)"
            )
    # Application events (install, update, uninstall) exist only for OAuth applications.
    for event in [] if portal.webhook else _events_to_bind():
        bound = portal.bound_events.get(event) if isinstance(portal.bound_events, dict) else None
        if force or bound != url:
            reasons = {url: "forced", None: "new", "": "new"}
            reason = reasons.get(bound, "handler URL changed")
            plan.actions.append(Action(Step.BIND_EVENT, "", event, reason=reason))
        else:
            plan.unchanged.append(("", event))
    return plan


def _plan_bot(plan: Plan, spec: BotSpec, row: Bot, force: bool) -> None:
    if row.type and (row.type != spec.type or row.openline != spec.openline):
        plan.notes.append(
            f"bot {spec.code} is registered as TYPE {row.type}, OPENLINE {_yn(row.openline)} "
            f"but declared as TYPE {spec.type}, OPENLINE {_yn(spec.openline)}: Bitrix24 cannot "
            f"change these; unregister it (manage.py imbot_unregister --bot {spec.code}, which "
            "deletes its private chats) and register it again"
        )
    fingerprint = bot_fingerprint(spec, plan.url)
    if row.spec_hash == fingerprint and not force:
        plan.unchanged.append((spec.code, ""))
        return
    if row.spec_hash == fingerprint:
        reason = "forced"
    elif row.spec_hash:
        reason = "declaration or handler URL changed"
    else:
        reason = "not yet registered by imbot_app"
    plan.actions.append(Action(Step.UPDATE_BOT, spec.code, reason=reason, spec=spec, bot_row=row))


def _plan_commands(
    plan: Plan, spec: BotSpec, bot: Bot, existing: dict[str, Command], force: bool
) -> None:
    existing = dict(existing)
    for command in spec.command_specs:
        target = f"/{command.command}"
        row = existing.pop(command.command, None)
        action = Action(
            Step.REGISTER_COMMAND,
            spec.code,
            target,
            spec=spec,
            command=command,
            bot_row=bot,
            command_row=row,
        )
        fingerprint = command_fingerprint(command, plan.url)
        if row is None:
            action.reason = "new"
        elif row.common is not None and row.common != command.common:
            action.step = Step.REPLACE_COMMAND
            action.reason = "COMMON changed (imbot.command.update cannot change it)"
        elif row.spec_hash != fingerprint or force:
            action.step = Step.UPDATE_COMMAND
            if row.spec_hash == fingerprint:
                action.reason = "forced"
            elif row.spec_hash:
                action.reason = "declaration or handler URL changed"
            else:
                action.reason = "not yet registered by imbot_app"
        else:
            plan.unchanged.append((spec.code, target))
            continue
        plan.actions.append(action)
    for word, row in sorted(existing.items()):
        plan.actions.append(
            Action(
                Step.UNREGISTER_COMMAND,
                spec.code,
                f"/{word}",
                reason="no longer declared",
                bot_row=bot,
                command_row=row,
            )
        )


def plan_unregister(portal: Portal, codes: Sequence[str] | None = None) -> Plan:
    """The actions that would unregister the portal's bots (all, or those with ``codes``)."""
    plan = Plan(portal=portal)
    live = _live_bots(portal)
    for code in codes if codes else sorted(live):
        row = live.get(code)
        if row is None:
            plan.notes.append(f"no registered bot {code} on this portal")
            continue
        plan.actions.append(
            Action(Step.UNREGISTER_BOT, code, f"#{row.bot_id}", reason="requested", bot_row=row)
        )
    return plan


# --------------------------------------------------------------------------- applying


def check_portal(portal: Portal) -> None:
    """Raise a clear error if the portal cannot be called now (from the database alone)."""
    if portal.status == Portal.Status.UNINSTALLED:
        raise errors.PortalUnavailable(
            f"portal {portal} is uninstalled: it must install the application again"
        )
    if portal.status == Portal.Status.REAUTH_REQUIRED:
        raise errors.ReauthorizationRequired(
            "invalid_grant",
            f"portal {portal} needs re-authorisation: Bitrix24 refused its refresh token; an "
            "administrator must open the application in Bitrix24 again, or reinstall it",
        )
    if portal.webhook:
        config = webhook_config()
        if config is None or config.domain != portal.domain.lower():
            raise errors.PortalUnavailable(
                f"portal {portal} is in webhook mode but IMBOT_WEBHOOK_URL and "
                "IMBOT_WEBHOOK_CLIENT_ID do not name it"
            )
        return  # the webhook URL is the credential: no endpoint, no tokens to check
    if not portal.client_endpoint:
        raise errors.PortalUnavailable(f"portal {portal} has no REST endpoint stored")
    installer = portal.installer_user_id
    if (
        installer is None
        or not Credential.objects.filter(portal=portal, user_id=installer).exists()
    ):
        raise errors.PortalUnavailable(
            f"portal {portal} has no tokens of the user who installed the application: "
            "install it again, or open it in Bitrix24 as an administrator"
        )


class _Runner:
    """Applies one plan's actions, in order, storing what Bitrix24 answers."""

    def __init__(self, plan: Plan, client: RestClient) -> None:
        self.plan = plan
        self.client = client
        self.portal = plan.portal
        self.bots: dict[str, Bot] = {
            a.bot: a.bot_row for a in plan.actions if a.bot_row is not None and a.bot
        }

    def run(self) -> None:
        stopped = False
        for action in self.plan.actions:
            if action.status != Status.PLANNED:
                continue
            if stopped:
                action.status = Status.SKIPPED
                action.outcome = "an earlier action failed"
                continue
            try:
                action.outcome = self._do(action)
            except _Stale as stale:
                action.status = Status.STALE
                action.outcome = str(stale)
                self.plan.stale = True
                return  # the rest is planned again
            except errors.ImbotError as exc:
                action.status = Status.FAILED
                action.outcome = str(exc)
                self.plan.error = f"{action.describe()}: {exc}"
                logger.warning("portal %s: %s", safe(str(self.portal)), safe_text(self.plan.error))
                stopped = True
            else:
                action.status = Status.DONE

    def _do(self, action: Action) -> str:
        handlers = {
            Step.REGISTER_BOT: self._register_bot,
            Step.UPDATE_BOT: self._update_bot,
            Step.UNREGISTER_BOT: self._unregister_bot,
            Step.REGISTER_COMMAND: self._register_command,
            Step.UPDATE_COMMAND: self._update_command,
            Step.REPLACE_COMMAND: self._replace_command,
            Step.UNREGISTER_COMMAND: self._unregister_command,
            Step.BIND_EVENT: self._bind_event,
        }
        return handlers[action.step](action)

    # ---------------------------------------------------------------- bots

    def _register_bot(self, action: Action) -> str:
        spec = action.spec
        assert spec is not None
        url = self.plan.url
        result = self.client.call("imbot.register", register_params(spec, url))
        bot_id = _as_id(result, "imbot.register")
        row = self._store_bot(spec, bot_id)
        # The whole declaration again: binds the update/delete handlers imbot.register ignores
        # for plain bots, and updates a bot Bitrix24 already had under this code.
        self.client.call("imbot.update", {"BOT_ID": bot_id, "FIELDS": bot_fields(spec, url)})
        Bot.objects.filter(pk=row.pk).update(spec_hash=bot_fingerprint(spec, url))
        return f"BOT_ID {bot_id}"

    def _store_bot(self, spec: BotSpec, bot_id: int) -> Bot:
        now = timezone.now()
        with transaction.atomic():
            # Bitrix24 drops a bot's commands with the bot: those of the code's other rows, and
            # of this id's row if it was deleted, are gone.
            others = Bot.objects.filter(portal=self.portal, code=spec.code).exclude(bot_id=bot_id)
            deleted = Bot.objects.filter(
                portal=self.portal, bot_id=bot_id, deleted_at__isnull=False
            )
            for bots in (others, deleted):
                Command.objects.filter(bot__in=bots, deleted_at__isnull=True).update(deleted_at=now)
            others.filter(deleted_at__isnull=True).update(deleted_at=now)
            row, _ = Bot.objects.update_or_create(
                portal=self.portal,
                bot_id=bot_id,
                defaults={
                    "code": spec.code,
                    "name": spec.display_name[:255],
                    "type": spec.type,
                    "openline": spec.openline,
                    "spec_hash": "",
                    "registered_at": now,
                    "deleted_at": None,
                },
            )
        self.bots[spec.code] = row
        return row

    def _update_bot(self, action: Action) -> str:
        spec, row = action.spec, action.bot_row
        assert spec is not None and row is not None
        try:
            self.client.call(
                "imbot.update", {"BOT_ID": row.bot_id, "FIELDS": bot_fields(spec, self.plan.url)}
            )
        except errors.BitrixError as exc:
            if exc.error == "BOT_ID_ERROR":
                self._forget_bot(row)
                raise _Stale(
                    f"bot #{row.bot_id} is gone from the portal ({exc.error}); registering it again"
                ) from exc
            raise
        values: dict[str, Any] = {
            "name": spec.display_name[:255],
            "spec_hash": bot_fingerprint(spec, self.plan.url),
            "registered_at": timezone.now(),
        }
        if not row.type:  # a bot only seen in events so far: take the declared kind
            values.update(type=spec.type, openline=spec.openline)
        Bot.objects.filter(pk=row.pk).update(**values)
        return f"BOT_ID {row.bot_id}"

    def _unregister_bot(self, action: Action) -> str:
        row = action.bot_row
        assert row is not None
        outcome = f"BOT_ID {row.bot_id}"
        try:
            self.client.call("imbot.unregister", {"BOT_ID": row.bot_id})
        except errors.BitrixError as exc:
            if exc.error != "BOT_ID_ERROR":
                raise
            outcome += " was already gone"
        self._forget_bot(row)
        return outcome

    def _forget_bot(self, row: Bot) -> None:
        now = timezone.now()
        with transaction.atomic():
            Command.objects.filter(bot=row, deleted_at__isnull=True).update(deleted_at=now)
            Bot.objects.filter(pk=row.pk).update(deleted_at=now)

    # ---------------------------------------------------------------- commands

    def _bot_for(self, action: Action) -> Bot:
        bot = self.bots.get(action.bot)
        if bot is None:  # its bot was not registered in this run: a plan out of order
            raise errors.ImbotError(f"bot {action.bot} is not registered")
        return bot

    def _register_command(self, action: Action) -> str:
        command = action.command
        assert command is not None
        bot = self._bot_for(action)
        params = {
            "BOT_ID": bot.bot_id,
            "COMMAND": command.command,
            "COMMON": _yn(command.common),
            "HIDDEN": _yn(command.hidden),
            "EXTRANET_SUPPORT": _yn(command.extranet),
            "EVENT_COMMAND_ADD": self.plan.url,
            "LANG": command.lang(),
        }
        result = self.client.call("imbot.command.register", params)
        command_id = _as_id(result, "imbot.command.register")
        fingerprint = command_fingerprint(command, self.plan.url)
        known = Command.objects.filter(portal=self.portal, command_id=command_id).exists()
        if known:
            # Bitrix24 answered the id of a command it already had (registered by an earlier
            # run, since forgotten here): send the declaration, which it did not apply.
            self.client.call(
                "imbot.command.update",
                {"COMMAND_ID": command_id, "FIELDS": command_fields(command, self.plan.url)},
            )
        Command.objects.update_or_create(
            portal=self.portal,
            command_id=command_id,
            defaults={
                "bot": bot,
                "command": command.command,
                "title": command.main_title[:255],
                "common": command.common,
                "spec_hash": fingerprint,
                "registered_at": timezone.now(),
                "deleted_at": None,
            },
        )
        return f"COMMAND_ID {command_id}"

    def _update_command(self, action: Action) -> str:
        command, row = action.command, action.command_row
        assert command is not None and row is not None
        fields = command_fields(command, self.plan.url)
        try:
            self.client.call(
                "imbot.command.update", {"COMMAND_ID": row.command_id, "FIELDS": fields}
            )
        except errors.BitrixError as exc:
            if exc.error == "COMMAND_ID_ERROR":
                Command.objects.filter(pk=row.pk).update(deleted_at=timezone.now())
                raise _Stale(
                    f"command #{row.command_id} is gone from the portal ({exc.error}); "
                    "registering it again"
                ) from exc
            raise
        Command.objects.filter(pk=row.pk).update(
            title=command.main_title[:255],
            spec_hash=command_fingerprint(command, self.plan.url),
            registered_at=timezone.now(),
        )
        return f"COMMAND_ID {row.command_id}"

    def _unregister_command_row(self, row: Command) -> bool:
        """Unregister ``row`` and mark it deleted; False if Bitrix24 had already dropped it."""
        gone = False
        try:
            self.client.call("imbot.command.unregister", {"COMMAND_ID": row.command_id})
        except errors.BitrixError as exc:
            if exc.error != "COMMAND_ID_ERROR":
                raise
            gone = True
        Command.objects.filter(pk=row.pk).update(deleted_at=timezone.now())
        return not gone

    def _replace_command(self, action: Action) -> str:
        row = action.command_row
        assert row is not None
        self._unregister_command_row(row)
        return f"COMMAND_ID {row.command_id} -> " + self._register_command(action).split()[-1]

    def _unregister_command(self, action: Action) -> str:
        row = action.command_row
        assert row is not None
        if self._unregister_command_row(row):
            return f"COMMAND_ID {row.command_id}"
        return f"COMMAND_ID {row.command_id} was already gone"

    # ---------------------------------------------------------------- events

    def _bind_event(self, action: Action) -> str:
        event, url = action.target, self.plan.url
        bound = dict(self.portal.bound_events) if isinstance(self.portal.bound_events, dict) else {}
        previous = bound.get(event)
        if previous and previous != url:
            try:
                self.client.call("event.unbind", {"event": event, "handler": previous})
            except errors.BitrixError as exc:
                logger.info(
                    "portal %s: unbinding %s from %s: %s",
                    safe(str(self.portal)),
                    event,
                    safe(previous),
                    safe_text(exc),
                )
        outcome = "bound"
        try:
            self.client.call("event.bind", {"event": event, "handler": url})
        except errors.BitrixError as exc:
            if "already bind" not in exc.description.lower():
                raise
            outcome = "was already bound"
        bound[event] = url
        self.portal.bound_events = bound
        Portal.objects.filter(pk=self.portal.pk).update(bound_events=bound)
        return outcome


def apply(plan: Plan, client: RestClient | None = None) -> Plan:
    """Run the plan's planned actions (see the module docstring); returns the plan."""
    _Runner(plan, client or RestClient(plan.portal)).run()
    return plan


def _record(portal: Portal, plan: Plan) -> None:
    """The outcome on the portal: when registration last succeeded, or why it failed."""
    now = timezone.now()
    if plan.error:
        portal.registration_error = plan.error
        Portal.objects.filter(pk=portal.pk).update(registration_error=plan.error, updated_at=now)
    else:
        portal.registered_at, portal.registration_error = now, ""
        Portal.objects.filter(pk=portal.pk).update(
            registered_at=now, registration_error="", updated_at=now
        )


def sync_portal(
    portal: Portal,
    *,
    specs: Sequence[BotSpec] | None = None,
    dry_run: bool = False,
    force: bool = False,
    client: RestClient | None = None,
) -> Plan:
    """Register or update the declared bots on ``portal``; the returned plan tells how it went.

    Problems of the portal (uninstalled, no tokens, needs re-authorisation) and failed calls
    end in ``plan.error`` (and, unless ``dry_run``, in ``portal.registration_error``); they are
    not raised.  A missing or unusable ``IMBOT_PUBLIC_URL`` or an invalid declaration raise
    :class:`~django.core.exceptions.ImproperlyConfigured`: no portal can be registered then.
    """
    url = handler_url()
    specs = declared_bots() if specs is None else tuple(specs)
    plan = plan_sync(portal, specs, url=url, force=force)
    plan.dry_run = dry_run
    try:
        check_portal(portal)
    except errors.PortalUnavailable as exc:
        plan.error = str(exc)
        if not dry_run:
            _record(portal, plan)
        return plan
    if dry_run:
        return plan
    client = client or RestClient(portal)
    apply(plan, client)
    if plan.stale:
        done = [a for a in plan.actions if a.status != Status.PLANNED]
        again = apply(plan_sync(portal, specs, url=url), client)
        plan.actions = done + again.actions
        plan.unchanged, plan.notes, plan.error = again.unchanged, again.notes, again.error
        if again.stale and not plan.error:
            plan.error = "Bitrix24 keeps losing the bots and commands registered on it"
    _record(portal, plan)
    return plan


def unregister_portal(
    portal: Portal,
    *,
    codes: Sequence[str] | None = None,
    dry_run: bool = False,
    client: RestClient | None = None,
) -> Plan:
    """Unregister the portal's bots (all, or those with ``codes``) with imbot.unregister.

    Bitrix24 deletes each bot's private chats with it; the Bot rows, chats and messages stay
    here, the bots marked deleted.
    """
    plan = plan_unregister(portal, codes)
    plan.dry_run = dry_run
    if not plan.actions:
        return plan
    try:
        check_portal(portal)
    except errors.PortalUnavailable as exc:
        plan.error = str(exc)
        return plan
    if not dry_run:
        apply(plan, client)
    return plan
