"""Registration plans: what registering the declared bots on a portal would do.

:func:`plan_sync` compares the declarations (:mod:`imbot_app.lifecycle.bots`) with what the
database says is registered on a portal and lists the actions that would bring Bitrix24 in
line; :func:`plan_unregister` lists the bots to drop; :func:`check_portal` says whether a
portal can be called at all.  Planning reads the database only, so a dry run is a printed plan;
:mod:`imbot_app.lifecycle.registration` applies plans.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F

from imbot_app import errors
from imbot_app.conf import imbot_settings
from imbot_app.lifecycle.bots import declared_bots, handler_url
from imbot_app.lifecycle.specs import BotSpec, CommandSpec
from imbot_app.models import Bot, Command, Credential, Portal
from imbot_app.outbound.webhook import webhook_config
from imbot_app.protocol import registration_for

__all__ = [
    "Action",
    "Plan",
    "Status",
    "Step",
    "bot_fingerprint",
    "check_portal",
    "command_fingerprint",
    "plan_sync",
    "plan_unregister",
]


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


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


def step_methods(step: Step, api: str = "v1") -> tuple[str, ...]:
    """The Bitrix24 methods ``step`` calls, in order, for a bot of API ``api``."""
    methods: tuple[str, ...] = registration_for(api).STEP_METHODS[str(step)]
    return methods


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
    def api(self) -> str:
        """The API version of the action's bot (``"v1"`` for application events)."""
        if self.spec is not None:
            return self.spec.api
        return self.bot_row.api if self.bot_row is not None else "v1"

    @property
    def methods(self) -> tuple[str, ...]:
        return step_methods(self.step, self.api)

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


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def bot_fingerprint(spec: BotSpec, url: str) -> str:
    """Changes when anything imbot.update would send changes (TYPE and OPENLINE cannot)."""
    return _digest(registration_for(spec.api).bot_fields(spec, url))


def command_fingerprint(command: CommandSpec, url: str, api: str = "v1") -> str:
    return _digest(registration_for(api).command_fields(command, url))


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
        if row.api != spec.api:
            plan.notes.append(_api_changed(spec, row))
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
    if not url and not portal.webhook and _events_to_bind():
        plan.notes.append(
            "application events are not bound: IMBOT_PUBLIC_URL is not set (only fetch-mode "
            "Chatbots 2.0 bots are declared, which need none)"
        )
    for event in [] if portal.webhook or not url else _events_to_bind():
        bound = portal.bound_events.get(event) if isinstance(portal.bound_events, dict) else None
        if force or bound != url:
            reasons = {url: "forced", None: "new", "": "new"}
            reason = reasons.get(bound, "handler URL changed")
            plan.actions.append(Action(Step.BIND_EVENT, "", event, reason=reason))
        else:
            plan.unchanged.append(("", event))
    return plan


def _api_changed(spec: BotSpec, row: Bot) -> str:
    """Bitrix24 never moves a bot to another API version: a v2 registration is a new bot."""
    return (
        f"bot {spec.code} (#{row.bot_id}) is registered with API {row.api} but declared with "
        f"api={spec.api!r}: a bot keeps the API it was registered with (a Chatbots 2.0 "
        "registration is a new bot); it is left as it is. Declare the new bot under a new code, "
        f"or unregister this one first (manage.py imbot_unregister --bot {spec.code}, which "
        "deletes its private chats)"
    )


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
        fingerprint = command_fingerprint(command, plan.url, spec.api)
        replace = not registration_for(spec.api).UPDATE_CHANGES_COMMON
        if row is None:
            action.reason = "new"
        elif replace and row.common is not None and row.common != command.common:
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
