"""Applying registration plans: REST calls first, the database following step by step.

:func:`apply` runs a plan's actions (:mod:`imbot_app.lifecycle.plans`) one by one with the
installer's tokens (:class:`~imbot_app.outbound.rest.RestClient`) and stores each id Bitrix24
returns as soon as it has it: REST calls cannot be rolled back, so the database follows
Bitrix24 step by step and a run that stops half-way is finished by the next one.
:func:`sync_portal` is the entry point the install handler, the install page and
``manage.py imbot_register`` share; it also records the outcome on the portal
(``registered_at``, or ``registration_error``).  The first failing call stops the portal's
run; the actions after it are reported as skipped.

Each action is spelled by its bot's API version (``protocol.registration_for``): a v1 bot's by
``imbot.register`` ..., a Chatbots 2.0 bot's by ``imbot.v2.Bot.register`` ..., on one portal in
one run.  A v2 bot on an inbound-webhook portal names itself with its ``botToken``
(:mod:`imbot_app.lifecycle.bot_rows`); a v2 error is reported with what it means
(``protocol.explain``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.utils import timezone

from imbot_app import errors
from imbot_app.conf import imbot_settings
from imbot_app.lifecycle.bot_rows import (
    as_id,
    bot_token_for,
    forget_bot,
    needs_bot_token,
    store_bot,
)
from imbot_app.lifecycle.bots import declared_bots, handler_url, needs_public_url
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
from imbot_app.protocol import explain, registration_for

v1_methods = registration_for("v1")
logger = logging.getLogger("imbot_app.registration")

__all__ = ["apply", "sync_portal", "unregister_portal"]


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
                action.outcome = self._explained(action, exc)
                self.plan.error = f"{action.describe()}: {action.outcome}"
                logger.warning("portal %s: %s", safe(str(self.portal)), safe_text(self.plan.error))
                stopped = True
            else:
                action.status = Status.DONE

    @staticmethod
    def _explained(action: Action, exc: errors.ImbotError) -> str:
        """A Chatbots 2.0 error with what it means; v1's as Bitrix24 worded it."""
        if action.api == "v2" and isinstance(exc, errors.BitrixError):
            where = f"{exc.method}: " if exc.method else ""
            return where + explain(exc.error, exc.description)
        return str(exc)

    def _token(self, row: Bot | None) -> str:
        return row.bot_token if row is not None and needs_bot_token(self.portal, row.api) else ""

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
        url, steps = self.plan.url, registration_for(spec.api)
        token = (
            bot_token_for(self.portal, spec.code) if needs_bot_token(self.portal, spec.api) else ""
        )
        method, params = steps.register_bot(spec, url, bot_token=token)
        result = self.client.call(method, params)
        bot_id = as_id(steps.id_of(result, "bot"), method)
        row = self.bots[spec.code] = store_bot(self.portal, spec, bot_id, token)
        # The whole declaration again: binds the update/delete handlers imbot.register ignores
        # for plain bots, and updates a bot Bitrix24 already had under this code (v2's
        # Bot.register answers an existing bot without updating it).
        self.client.call(*steps.update_bot(bot_id, spec, url, bot_token=token))
        Bot.objects.filter(pk=row.pk).update(spec_hash=bot_fingerprint(spec, url))
        return f"BOT_ID {bot_id}"

    def _update_or_stale(
        self,
        call: tuple[str, dict[str, Any]],
        kind: str,
        row_id: int,
        forget: Callable[[], object],
        api: str,
    ) -> None:
        """Make an update call; when Bitrix24 says the bot or command is gone, forget it, re-plan.

        Bots and commands go stale the same way (deleted on the portal behind our back).
        """
        steps = registration_for(api)
        gone = {"bot": steps.BOT_GONE, "command": steps.COMMAND_GONE}[kind]
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
        steps = registration_for(row.api)
        call = steps.update_bot(row.bot_id, spec, self.plan.url, bot_token=self._token(row))
        self._update_or_stale(call, "bot", row.bot_id, lambda: forget_bot(row), row.api)
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
        steps = registration_for(row.api)
        try:
            self.client.call(*steps.unregister_bot(row.bot_id, bot_token=self._token(row)))
        except errors.BitrixError as exc:
            if exc.error != steps.BOT_GONE:
                raise
            outcome += " was already gone"
        forget_bot(row)
        return outcome

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
        steps, token, url = registration_for(bot.api), self._token(bot), self.plan.url
        method, params = steps.register_command(bot.bot_id, command, url, bot_token=token)
        result = self.client.call(method, params)
        command_id = as_id(steps.id_of(result, "command"), method)
        fingerprint = command_fingerprint(command, url, bot.api)
        known = Command.objects.filter(portal=self.portal, command_id=command_id).exists()
        if known:
            # Bitrix24 answered the id of a command it already had (registered by an earlier
            # run, since forgotten here): send the declaration, which it did not apply.
            call = steps.update_command(
                command_id, command, url, bot_id=bot.bot_id, bot_token=token
            )
            self.client.call(*call)
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
        bot = self._bot_for(action)
        call = registration_for(bot.api).update_command(
            row.command_id, command, self.plan.url, bot_id=bot.bot_id, bot_token=self._token(bot)
        )

        def forget() -> None:
            Command.objects.filter(pk=row.pk).update(deleted_at=timezone.now())

        self._update_or_stale(call, "command", row.command_id, forget, bot.api)
        Command.objects.filter(pk=row.pk).update(
            title=command.main_title[:255],
            common=command.common,
            spec_hash=command_fingerprint(command, self.plan.url, bot.api),
            registered_at=timezone.now(),
        )
        return f"COMMAND_ID {row.command_id}"

    def _unregister_command_row(self, row: Command, bot: Bot) -> bool:
        """Unregister ``row`` and mark it deleted; False if Bitrix24 had already dropped it."""
        gone = False
        steps = registration_for(bot.api)
        call = steps.unregister_command(
            row.command_id, bot_id=bot.bot_id, bot_token=self._token(bot)
        )
        try:
            self.client.call(*call)
        except errors.BitrixError as exc:
            if exc.error != steps.COMMAND_GONE:
                raise
            gone = True
        Command.objects.filter(pk=row.pk).update(deleted_at=timezone.now())
        return not gone

    def _replace_command(self, action: Action) -> str:
        row = action.command_row
        assert row is not None
        self._unregister_command_row(row, self._bot_for(action))
        return f"COMMAND_ID {row.command_id} -> " + self._register_command(action).split()[-1]

    def _unregister_command(self, action: Action) -> str:
        row = action.command_row
        assert row is not None
        if self._unregister_command_row(row, self._bot_for(action)):
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
    specs = declared_bots() if specs is None else tuple(specs)
    url = handler_url() if needs_public_url(specs) or imbot_settings.PUBLIC_URL else ""
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
