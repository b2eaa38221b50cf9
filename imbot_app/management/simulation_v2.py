"""``imbot_simulate --api v2``: a simulated portal with a Chatbots 2.0 bot, fetch or webhook.

**Fetch mode** (``--mode fetch``, the default for v2) is a bot without a public address: the
fake Bitrix24 keeps the bot's events in its ``imbot.v2.Event.get`` queue and this process
polls them, as ``imbot_worker`` does (:func:`imbot_app.dispatch.fetch.poll_bot`: stored through
the endpoint's own store, acknowledged by the next call's offset).  The handlers run here,
inline, right after each page commits; nothing listens on any port but the fake's.

**Webhook mode** (``--mode webhook``) posts each event, form-encoded as Bitrix24's
``http_build_query`` writes it, to the bot's handler URL (``--url`` or ``--serve PORT``).

Either way the portal and the bot are created in this project's database (the portal pointing
at the fake; a ``Bot`` row with ``api="v2"``), so a served project must share the database, as
``make demo``'s does.  Replies: the context objects still speak v1 on this branch (the v2 reply
methods are another change), so they reach the fake as ``imbot.message.add`` /
``imbot.command.answer``, which it answers like Bitrix24.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError
from django.test.utils import override_settings

from imbot_app.dispatch.fetch import PollOutcome, poll_bot, state_for
from imbot_app.dispatch.hooks import event_stored
from imbot_app.management.simulation import COMMAND, JOIN, Step, forget_portals, post_form
from imbot_app.models import Bot
from imbot_app.testing import FakeBitrix24, V2Event, V2EventFactory

FETCH = "fetch"
WEBHOOK = "webhook"
MODES = (FETCH, WEBHOOK)
#: What a bot's answer looks like in the fake's call log, v1 and v2 spellings alike.
ANSWER_METHODS = (
    "imbot.message.add",
    "imbot.command.answer",
    "imbot.message.update",
    "imbot.v2.Chat.Message.send",
    "imbot.v2.Command.answer",
)
DEMO_CODE = "echobot"


@contextmanager
def in_process_settings(fake: FakeBitrix24) -> Iterator[None]:
    """This process runs the handlers (fetch mode): replies to the fake, handlers inline."""
    with override_settings(
        IMBOT_ENDPOINT_HOSTS=["127.0.0.1"],
        IMBOT_OAUTH_SERVERS=[fake.rest_url],
        IMBOT_SENDER="imbot_app.outbound.sender.RestSender",
        IMBOT_DISPATCH="inline",
    ):
        yield


def install(fake: FakeBitrix24, mode: str) -> V2EventFactory:
    """A portal on the fake with one v2 bot both sides know (``api="v2"``, ``event_mode``)."""
    events = V2EventFactory.connected(fake, code=DEMO_CODE, event_mode=mode, user_name="Demo")
    Bot.objects.filter(portal__member_id=events.member_id, bot_id=events.bot_id).update(
        api="v2", event_mode=mode
    )
    return events


def event_for(fake: FakeBitrix24, events: V2EventFactory, step: Step) -> V2Event:
    group = step.chat_id is not None
    if step.kind == COMMAND:
        # Known to the fake, so that imbot.v2.Command.answer finds it.
        command_id = fake.v2.add_command(events.member_id, events.bot_id, step.command)
        return events.command_add(step.command, step.text, command_id=command_id, group=group)
    if step.kind == JOIN:
        return events.join_chat(group=group)
    return events.message_add(step.text, group=group)


class V2Simulation:
    """Talk to a v2 bot: enqueue-and-poll (fetch) or post (webhook); print the answers."""

    def __init__(self, fake: FakeBitrix24, write: Callable[[str], None], wait: float) -> None:
        self.fake = fake
        self.write = write
        self.wait = wait
        self.events: V2EventFactory | None = None

    def run(self, mode: str, steps: list[Step], url: str = "") -> None:
        self.events = events = install(self.fake, mode)
        self.write(
            f"Portal {events.domain} with Chatbots 2.0 bot {DEMO_CODE} (#{events.bot_id}) "
            f"in {mode} mode"
        )
        if mode == FETCH:
            self.write("  no public address: events wait in Bitrix24's queue, polled from here")
        failures = 0
        for step in steps:
            event = event_for(self.fake, events, step)
            before = len(self.fake.calls)
            ok = self._fetch(step, event) if mode == FETCH else self._post(step, url, event)
            failures += not ok
            replies = self._answers(before) if ok else []
            if ok and not replies:
                self.write("   (no answer)")
            for method, text in replies:
                self.write(f"   <- {method}: {text!r}")
        if failures:
            raise CommandError(f"{failures} event(s) were not delivered")

    def forget(self) -> int:
        return forget_portals([self.events.member_id]) if self.events is not None else 0

    # ------------------------------------------------------------------ delivery

    def _fetch(self, step: Step, event: V2Event) -> bool:
        assert self.events is not None
        event_id = self.events.enqueue(self.fake, event)
        state = state_for(Bot.objects.get(bot_id=self.events.bot_id, api="v2"))
        result = poll_bot(state, on_commit=event_stored)
        self.write(
            f"-> {step.title} ({event.type}) queued as event {event_id}; "
            f"Event.get: {result.outcome} "
            f"({result.stored} stored, next offset {result.offset})"
        )
        return result.outcome == PollOutcome.POLLED

    def _post(self, step: Step, url: str, event: V2Event) -> bool:
        answer = post_form(url, self._with_real_tokens(event))
        status = answer.json().get("status", "") if answer.status_code == 200 else answer.text
        self.write(f"-> {step.title} ({event.type}) posted: {answer.status_code} {status}")
        return answer.status_code == 200

    def _with_real_tokens(self, event: V2Event) -> dict[str, Any]:
        """The webhook body with tokens the fake knows (the store keeps the bot's as its
        Credential, and the replies are made with it)."""
        assert self.events is not None
        payload = event.as_webhook()
        blocks = ((payload["auth"], self.events.user_id), (payload["data"]["bot"]["auth"], None))
        for block, user_id in blocks:
            owner = user_id if user_id is not None else self.events.bot_id
            block["access_token"], block["refresh_token"] = self.fake.issue_tokens(
                self.events.member_id, owner
            )
        return payload

    def _answers(self, before: int) -> list[tuple[str, str]]:
        deadline = time.monotonic() + self.wait
        while True:
            calls = [c for c in self.fake.calls[before:] if c.method in ANSWER_METHODS]
            if calls or time.monotonic() > deadline:
                return [(c.method, _text(c.params)) for c in calls]
            time.sleep(0.05)


def _text(params: dict[str, Any]) -> str:
    fields = params.get("fields")
    if isinstance(fields, dict) and "message" in fields:
        return str(fields["message"])
    return str(params.get("MESSAGE", params.get("message", "")))
