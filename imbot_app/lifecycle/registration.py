"""Applying registration plans: REST calls first, the database following step by step.

:func:`apply` runs a plan's actions (:mod:`imbot_app.lifecycle.plans`) one by one with the
installer's tokens (:class:`~imbot_app.outbound.rest.RestClient`) and stores each id Bitrix24
returns as soon as it has it: REST calls cannot be rolled back, so the database follows
Bitrix24 step by step and a run that stops half-way is finished by the next one.
:func:`sync_portal` is the entry point the install handler, the install page and
``manage.py imbot_register`` share; it also records the outcome on the portal
(``registered_at``, or ``registration_error``).  The first failing call stops the portal's
run; the actions after it are reported as skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from imbot_app import errors
from imbot_app.lifecycle.bots import declared_bots, handler_url
from imbot_app.lifecycle.plans import (
    Action,
    Plan,
    Status,
    Step,
    _Stale,
    bot_fingerprint,
    check_portal,
    command_fingerprint,
    plan_sync,
    plan_unregister,
)
from imbot_app.lifecycle.specs import BotSpec
from imbot_app.logsafe import safe, safe_text
from imbot_app.models import Bot, Command, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.protocol import methods_for

v1_methods = methods_for("v1")
logger = logging.getLogger("imbot_app.registration")

__all__ = ["apply", "sync_portal", "unregister_portal"]


def _as_id(result: Any, method: str) -> int:
    if isinstance(result, bool) or not isinstance(result, int | str):
        raise errors.BitrixError("INVALID_RESULT", f"expected an id, got {result!r}", method=method)
    try:
        return int(result)
    except ValueError:
        raise errors.BitrixError(
            "INVALID_RESULT", f"expected an id, got {result!r}", method=method
        ) from None


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
        result = method, params = v1_methods.register_bot(spec, url)
        result = self.client.call(method, params)
        bot_id = _as_id(result, method)
        row = self._store_bot(spec, bot_id)
        # The whole declaration again: binds the update/delete handlers imbot.register ignores
        # for plain bots, and updates a bot Bitrix24 already had under this code.
        self.client.call(*v1_methods.update_bot(bot_id, spec, url))
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

    def _update_or_stale(
        self, call: tuple[str, dict[str, Any]], kind: str, row_id: int, forget: Callable[[], object]
    ) -> None:
        """Make an update call; when Bitrix24 says the bot or command is gone, forget it, re-plan.

        Bots and commands go stale the same way (deleted on the portal behind our back).
        """
        gone = {"bot": v1_methods.BOT_GONE, "command": v1_methods.COMMAND_GONE}[kind]
        try:
            self.client.call(*call)
        except errors.BitrixError as exc:
            if exc.error == gone:
                forget()
                raise _Stale(
                    f"{kind} #{row_id} is gone from the portal ({exc.error}); registering it again"
                ) from exc
            raise

    def _update_bot(self, action: Action) -> str:
        spec, row = action.spec, action.bot_row
        assert spec is not None and row is not None
        call = v1_methods.update_bot(row.bot_id, spec, self.plan.url)
        self._update_or_stale(call, "bot", row.bot_id, lambda: self._forget_bot(row))
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
            self.client.call(*v1_methods.unregister_bot(row.bot_id))
        except errors.BitrixError as exc:
            if exc.error != v1_methods.BOT_GONE:
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
        method, params = v1_methods.register_command(bot.bot_id, command, self.plan.url)
        result = self.client.call(method, params)
        command_id = _as_id(result, method)
        fingerprint = command_fingerprint(command, self.plan.url)
        known = Command.objects.filter(portal=self.portal, command_id=command_id).exists()
        if known:
            # Bitrix24 answered the id of a command it already had (registered by an earlier
            # run, since forgotten here): send the declaration, which it did not apply.
            self.client.call(*v1_methods.update_command(command_id, command, self.plan.url))
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
        call = v1_methods.update_command(row.command_id, command, self.plan.url)

        def forget() -> None:
            Command.objects.filter(pk=row.pk).update(deleted_at=timezone.now())

        self._update_or_stale(call, "command", row.command_id, forget)
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
            self.client.call(*v1_methods.unregister_command(row.command_id))
        except errors.BitrixError as exc:
            if exc.error != v1_methods.COMMAND_GONE:
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
                self.client.call(*v1_methods.unbind_event(event, previous))
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
            self.client.call(*v1_methods.bind_event(event, url))
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
