"""Fetch mode's core: poll ``imbot.v2.Event.get`` for one bot, store, then acknowledge.

``Event.get`` acknowledges by deleting: the ``offset`` a call sends deletes every event below
it.  So an offset may only be sent once the events below it are stored, and the order of one
poll (:func:`poll_bot`) is:

1. **claim** the bot's lease (:class:`~imbot_app.models.BotFetchState`: one conditional UPDATE;
   a lease held by another live poller means :attr:`PollOutcome.BUSY`);
2. **fetch** a page with the *stored* offset (:func:`fetch_page`, ``limit`` up to 1000);
3. in one transaction, **store** every event through :func:`imbot_app.inbound.store.store_event`,
the
   webhook's own store, deduplicated on ``eventId`` (:func:`store_page`), and **advance** the
   stored offset to the page's ``nextOffset`` (:func:`advance`; ``0`` on an empty queue keeps
   the old one) — only while the lease is still ours, else the whole page rolls back;
4. **release** the lease.

A process killed after step 3 stored but before the next call sent the offset fetches the same
events again and stores none twice; one killed before step 3 committed stored nothing and
loses nothing.  Events are never acknowledged before they are committed.

The result (:class:`PollResult`) says when to poll again: ``IMBOT_FETCH_BUSY_INTERVAL`` (at
least 2 s) while ``hasMore``, ``IMBOT_FETCH_IDLE_INTERVAL`` (5-30 s) when the queue is empty,
exponential backoff with jitter after 429 / 503 ``QUERY_LIMIT_EXCEEDED`` / network errors (and
any other failure, which is kept in ``last_error``).  No sleeping happens here: the worker
loop schedules; ``next_poll_at`` is stored too, for :func:`due_states`.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from imbot_app import errors
from imbot_app import events as ev
from imbot_app.conf import imbot_settings
from imbot_app.dispatch.fetch_lease import claim, due_states, poller_name, release, state_for
from imbot_app.errors import InvalidPayload
from imbot_app.inbound.auth import Authenticated
from imbot_app.inbound.rows import bot_ids
from imbot_app.inbound.store import store_event
from imbot_app.models import BotFetchState, Event
from imbot_app.outbound.rest import RestClient
from imbot_app.protocol import fetch_schedule, parse_envelope
from imbot_app.protocol import v2_events as v2events
from imbot_app.protocol import v2_methods as methods
from imbot_app.wire import WireError
from imbot_app.wire.decode import _check_json_shape

logger = logging.getLogger("imbot_app.fetch")

__all__ = [
    "Page",
    "PollOutcome",
    "PollResult",
    "advance",
    "claim",
    "due_states",
    "fetch_page",
    "poll_bot",
    "poller_name",
    "release",
    "state_for",
    "store_page",
]

OnCommit = Callable[[Event, ev.BitrixEvent | None], None]


class PollOutcome(enum.StrEnum):
    POLLED = "polled"  # events fetched and stored, offset advanced
    EMPTY = "empty"  # the queue was empty; the offset kept
    BUSY = "busy"  # another poller holds the bot's lease
    FAILED = "failed"  # Event.get or the store failed; nothing acknowledged
    LEASE_LOST = "lease_lost"  # the lease ran out mid-poll: the page was rolled back


@dataclass(frozen=True, slots=True)
class Page:
    """One ``Event.get`` answer: raw items, ``nextOffset``, ``hasMore``, the offset sent."""

    events: tuple[Mapping[str, Any], ...]
    next_offset: int
    has_more: bool
    sent_offset: int


@dataclass(frozen=True, slots=True)
class Stored:
    """What :func:`store_page` did: new Event pks (in order), duplicates, invalid ones."""

    event_ids: tuple[int, ...]
    duplicates: int
    invalid: int
    lag_seconds: float | None


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one :func:`poll_bot` did, and when to poll this bot again (``next_poll_in`` s)."""

    bot_id: int
    outcome: PollOutcome
    next_poll_in: float
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    offset: int = 0
    has_more: bool = False
    error: str = ""
    event_ids: tuple[int, ...] = ()


# --------------------------------------------------------------------------- steps


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.BitrixError(
            "INVALID_RESULT", f"{what} is not an integer", method=methods.PREFIX + "Event.get"
        )
    return value


def fetch_page(
    state: BotFetchState,
    client: RestClient,
    *,
    limit: int | None = None,
    bot_token: str | None = None,
) -> Page:
    """Call ``Event.get`` with the stored offset; raises :class:`~imbot_app.errors.BitrixError`.

    The answer is checked before anything trusts it: ``events`` a list of at most ``limit``
    items, ``nextOffset`` an integer that never goes back, ``hasMore`` a boolean.
    """
    limit = fetch_schedule.fetch_limit() if limit is None else limit
    call = methods.event_get(
        state.bot.bot_id, offset=state.offset, limit=limit, bot_token=bot_token
    )
    result = client.call(call.method, call.params)
    if not isinstance(result, Mapping) or not isinstance(result.get("events"), list):
        raise errors.BitrixError(
            "INVALID_RESULT", "Event.get answered without an events list", method=call.method
        )
    items = result["events"]
    if len(items) > limit:
        raise errors.BitrixError(
            "INVALID_RESULT",
            f"Event.get answered {len(items)} events for limit {limit}",
            method=call.method,
        )
    next_offset = _int(result.get("nextOffset", 0), "nextOffset")
    if items and next_offset < state.offset:
        raise errors.BitrixError(
            "INVALID_RESULT",
            f"nextOffset {next_offset} is below the offset sent ({state.offset})",
            method=call.method,
        )
    ids = [i["eventId"] for i in items if isinstance(i, Mapping) and type(i.get("eventId")) is int]
    if ids and next_offset <= max(ids):
        # Sent back, it would not acknowledge this page: the same events would come forever.
        raise errors.BitrixError(
            "INVALID_RESULT",
            f"nextOffset {next_offset} does not pass the page's last eventId {max(ids)}",
            method=call.method,
        )
    return Page(
        events=tuple(items),
        next_offset=next_offset,
        has_more=result.get("hasMore") is True,
        sent_offset=state.offset,
    )


def _invalid_payload(item: Any, member_id: str) -> dict[str, Any]:
    """An item too broken to type: kept (redacted by the store) under a recognisable name."""
    name = item.get("type") if isinstance(item, Mapping) else None
    event = str(name).strip().upper()[:64] if isinstance(name, str) and name.strip() else ""
    payload: dict[str, Any] = {
        "event": event or "ONIMBOTV2INVALID",
        "data": {},
        "item": dict(item) if isinstance(item, Mapping) else repr(item)[:1000],
        "auth": {"member_id": member_id},
    }
    number = item.get("eventId") if isinstance(item, Mapping) else None
    if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 2**63:
        payload["eventId"] = number  # the dedup key, so a page fetched again stores it once
    return payload


def _summary(item: Any) -> dict[str, Any]:
    """What is kept of an item over the field or depth limits: its id and type, no data."""
    if not isinstance(item, Mapping):
        return {}
    return {k: item[k] for k in ("eventId", "type", "date") if isinstance(item.get(k), str | int)}


def store_page(state: BotFetchState, page: Page, *, on_commit: OnCommit | None = None) -> Stored:
    """Store every event of ``page`` through the webhook's store, deduplicated on eventId.

    An item that does not validate is stored as an ``invalid`` Event with the reasons (as the
    endpoint keeps an invalid authenticated event), so acknowledging it loses nothing.
    ``on_commit`` is ``store_event``'s hook (e.g. ``dispatch.event_stored``).
    """
    portal = state.bot.portal
    authenticated = Authenticated(portal=portal)
    new: list[int] = []
    duplicates = invalid = 0
    oldest: float | None = None
    for item in page.events:
        event: ev.BitrixEvent | None = None
        reason = ""
        try:
            _check_json_shape(item, int(imbot_settings.MAX_FIELDS), int(imbot_settings.MAX_DEPTH))
            payload = v2events.fetch_payload(item, member_id=portal.member_id)
        except WireError as exc:
            # Too big or too deep to keep: only its id and type are stored, with the reason.
            payload = _invalid_payload(_summary(item), portal.member_id)
            reason = json.dumps({"item": exc.message}, ensure_ascii=False)
        except InvalidPayload as exc:
            payload = _invalid_payload(item, portal.member_id)
            reason = json.dumps({"item": exc.errors}, ensure_ascii=False, default=str)
        envelope = parse_envelope(payload)
        if not reason:
            try:
                event = v2events.parse_event(envelope)
            except InvalidPayload as exc:
                reason = json.dumps(exc.errors, ensure_ascii=False, default=str)
            if envelope.ts is not None:
                stamp = envelope.ts.timestamp()
                oldest = stamp if oldest is None else min(oldest, stamp)
        result = store_event(
            envelope,
            event,
            authenticated,
            None,
            invalid_reason=reason,
            on_commit=on_commit,
            dedup=v2events.dedup_key,
        )
        if result.duplicate:
            duplicates += 1
        else:
            new.append(result.event.pk)
            invalid += event is None
    lag = None if oldest is None else max(0.0, timezone.now().timestamp() - oldest)
    return Stored(tuple(new), duplicates, invalid, lag)


def advance(
    state: BotFetchState,
    page: Page,
    owner: str,
    *,
    stored: Stored | None = None,
    now: datetime | None = None,
    next_poll_in: float | None = None,
) -> bool:
    """Persist the offset the *next* Event.get sends; ``False`` if the lease is not ours.

    ``nextOffset`` 0 (an empty queue) keeps the stored offset, and an offset never moves back.
    Call it in the transaction that stored the page, so both commit or neither does.
    """
    now = now or timezone.now()
    offset = max(state.offset, page.next_offset) if page.next_offset else state.offset
    values: dict[str, Any] = {
        "offset": offset,
        "last_poll_at": now,
        "last_error": "",
        "failures": 0,
    }
    if next_poll_in is not None:
        values["next_poll_at"] = now + timedelta(seconds=next_poll_in)
    if stored is not None and page.events:
        values["last_event_at"] = now
        values["lag_seconds"] = stored.lag_seconds
        values["events_stored"] = F("events_stored") + len(stored.event_ids)
    updated = BotFetchState.objects.filter(pk=state.pk, claimed_by=owner).update(**values)
    if updated:
        state.offset = offset
    return updated == 1


class _LeaseLost(Exception):
    pass


def _failed(state: BotFetchState, owner: str, error: str, now: datetime) -> PollResult:
    failures = state.failures + 1
    delay = fetch_schedule.backoff_delay(failures)
    BotFetchState.objects.filter(pk=state.pk).update(
        failures=failures,
        last_error=error[:2000],
        last_poll_at=now,
        next_poll_at=now + timedelta(seconds=delay),
    )
    state.failures = failures
    return PollResult(
        bot_id=state.bot.bot_id,
        outcome=PollOutcome.FAILED,
        next_poll_in=delay,
        offset=state.offset,
        error=error,
    )


def poll_bot(
    state: BotFetchState,
    *,
    owner: str | None = None,
    client: RestClient | None = None,
    bot_token: str | None = None,
    limit: int | None = None,
    on_commit: OnCommit | None = None,
) -> PollResult:
    """One poll of one bot: claim, fetch, store + advance (one transaction), release.

    ``client`` defaults to the portal's :class:`~imbot_app.outbound.rest.RestClient` without its own
    rate-limit retries (this function backs off instead, without holding the lease);
    ``bot_token`` is the bot's secret on an inbound-webhook portal.  Never raises for Bitrix24
    or database trouble: the result says what happened and when to try again.
    """
    owner = owner or poller_name()
    bot_id = state.bot.bot_id
    now = timezone.now()
    if not claim(state, owner, now=now):
        held = BotFetchState.objects.filter(pk=state.pk).values_list("claim_until", flat=True)
        until = next(iter(held), None)
        wait = (
            max(fetch_schedule.MIN_BUSY, (until - now).total_seconds())
            if until
            else fetch_schedule.MIN_BUSY
        )
        return PollResult(bot_id=bot_id, outcome=PollOutcome.BUSY, next_poll_in=wait)
    try:
        state.refresh_from_db(fields=["offset", "failures"])  # another poller may have moved it
        portal = state.bot.portal
        try:
            page = fetch_page(
                state,
                client or RestClient(portal, max_retries=0),
                limit=limit,
                bot_token=bot_token,
            )
        except errors.ImbotError as exc:
            logger.warning("Event.get for bot %s on %s failed: %s", bot_id, portal, exc)
            return _failed(state, owner, str(exc), now)
        except Exception as exc:  # an answer requests could not read, say: back off, go on
            logger.exception("Event.get for bot %s on %s failed", bot_id, portal)
            return _failed(state, owner, f"Event.get failed: {type(exc).__name__}", now)
        wait = fetch_schedule.busy_interval() if page.has_more else fetch_schedule.idle_interval()
        try:
            if not state.bot.deleted_at:
                # The bot's row is committed and every event of the page names it: the store's
                # bot cache learns it now (outside a transaction, on_commit runs at once), not
                # after the page's transaction, saving a query per event.
                bot_ids.remember(state.bot)
            with transaction.atomic():
                stored = store_page(state, page, on_commit=on_commit)
                if not advance(state, page, owner, stored=stored, next_poll_in=wait):
                    raise _LeaseLost
        except _LeaseLost:
            logger.warning("lost the fetch lease of bot %s mid-poll; page rolled back", bot_id)
            return PollResult(
                bot_id=bot_id, outcome=PollOutcome.LEASE_LOST, next_poll_in=fetch_schedule.MIN_BUSY
            )
        except Exception as exc:  # the page stays unacknowledged: fetched again next time
            logger.exception("storing Event.get's page for bot %s failed", bot_id)
            return _failed(state, owner, f"store failed: {type(exc).__name__}: {exc}", now)
        return PollResult(
            bot_id=bot_id,
            outcome=PollOutcome.POLLED if page.events else PollOutcome.EMPTY,
            next_poll_in=wait,
            fetched=len(page.events),
            stored=len(stored.event_ids),
            duplicates=stored.duplicates,
            invalid=stored.invalid,
            offset=state.offset,
            has_more=page.has_more,
            event_ids=stored.event_ids,
        )
    finally:
        release(state, owner)
