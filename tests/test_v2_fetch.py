"""The fetch-mode poller against the real fake Bitrix24 server: store first, then acknowledge."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imbot_app.dispatch import fetch
from imbot_app.dispatch.fetch import PollOutcome
from imbot_app.models import Bot, BotFetchState, Event, Message
from imbot_app.outbound.rest import RestClient
from imbot_app.protocol.v2 import schedule
from imbot_app.testing import FakeBitrix24, V2EventFactory


@pytest.fixture
def b24() -> Iterator[FakeBitrix24]:
    with FakeBitrix24() as fake:
        yield fake


def _setup(fake: FakeBitrix24) -> tuple[V2EventFactory, BotFetchState]:
    events = V2EventFactory.connected(fake)
    bot = Bot.objects.get(bot_id=events.bot_id)
    return events, fetch.state_for(bot)


def _fill(fake: FakeBitrix24, events: V2EventFactory, count: int) -> list[int]:
    return [events.enqueue(fake, events.message_add(f"m{i}")) for i in range(count)]


def _event_get_offsets(fake: FakeBitrix24) -> list[Any]:
    return [call.params.get("offset") for call in fake.calls_to("imbot.v2.Event.get")]


@pytest.mark.django_db
def test_a_poll_stores_the_page_then_the_next_call_acknowledges_it(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)
    ids = _fill(b24, events, 3)

    result = fetch.poll_bot(state)

    assert result.outcome == PollOutcome.POLLED
    assert (result.fetched, result.stored, result.duplicates) == (3, 3, 0)
    assert result.offset == ids[-1] + 1
    assert result.next_poll_in == schedule.idle_interval()
    stored = Event.objects.filter(pk__in=result.event_ids).order_by("pk")
    assert [e.payload["eventId"] for e in stored] == ids
    assert {e.name for e in stored} == {"ONIMBOTV2MESSAGEADD"}
    assert {e.dedup_key for e in stored} == {f"ONIMBOTV2MESSAGEADD:event:{i}" for i in ids}
    assert sorted(Message.objects.values_list("text", flat=True)) == ["m0", "m1", "m2"]
    state.refresh_from_db()
    assert state.offset == ids[-1] + 1
    assert state.events_stored == 3 and state.last_error == "" and state.claimed_by == ""
    assert state.lag_seconds is not None and state.last_event_at is not None
    # Stored, but not yet acknowledged: the fake still holds them until the next call.
    assert b24.v2.queued(events.member_id, events.bot_id) == ids

    again = fetch.poll_bot(state)

    assert again.outcome == PollOutcome.EMPTY
    assert b24.v2.queued(events.member_id, events.bot_id) == []
    assert _event_get_offsets(b24) == [None, ids[-1] + 1]
    assert all(c.params["limit"] == 1000 for c in b24.calls_to("imbot.v2.Event.get"))
    state.refresh_from_db()
    assert state.offset == ids[-1] + 1  # nextOffset 0 on the empty queue kept the old one
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_a_crash_between_store_and_the_next_call_loses_nothing_and_stores_nothing_twice(
    b24: FakeBitrix24,
) -> None:
    events, state = _setup(b24)
    ids = _fill(b24, events, 4)
    # The poller dies after its transaction committed the events, before the offset was
    # written (the steps of poll_bot, without the last).
    page = fetch.fetch_page(state, RestClient(state.bot.portal))
    with transaction.atomic():
        fetch.store_page(state, page)
    assert Event.objects.count() == 4
    state.refresh_from_db()
    assert state.offset == 0
    late = _fill(b24, events, 1)

    result = fetch.poll_bot(state)

    assert result.outcome == PollOutcome.POLLED
    assert (result.fetched, result.stored, result.duplicates) == (5, 1, 4)
    assert Event.objects.count() == 5
    assert sorted(e.payload["eventId"] for e in Event.objects.all()) == ids + late
    assert Message.objects.count() == 5
    fetch.poll_bot(state)
    assert b24.v2.queued(events.member_id, events.bot_id) == []


@pytest.mark.django_db
def test_throttling_backs_off_then_recovers_without_losing_events(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)
    ids = _fill(b24, events, 2)
    b24.throttle(2)  # 503 QUERY_LIMIT_EXCEEDED twice

    first = fetch.poll_bot(state)
    second = fetch.poll_bot(state)

    assert first.outcome == second.outcome == PollOutcome.FAILED
    assert "QUERY_LIMIT_EXCEEDED" in first.error
    assert len(b24.calls_to("imbot.v2.Event.get")) == 2  # the client itself did not retry
    state.refresh_from_db()
    assert state.failures == 2 and "QUERY_LIMIT_EXCEEDED" in state.last_error
    assert state.next_poll_at is not None and state.offset == 0 and state.claimed_by == ""
    assert not Event.objects.exists()

    third = fetch.poll_bot(state)

    assert third.outcome == PollOutcome.POLLED and third.stored == 2
    state.refresh_from_db()
    assert (state.failures, state.last_error, state.offset) == (0, "", ids[-1] + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "error"), [(429, "OPERATION_TIME_LIMIT"), (500, "INTERNAL_SERVER_ERROR")]
)
def test_other_failures_back_off_too(b24: FakeBitrix24, status: int, error: str) -> None:
    events, state = _setup(b24)
    _fill(b24, events, 1)
    b24.fail_method("imbot.v2.Event.get", status=status, error=error)
    result = fetch.poll_bot(state)
    assert result.outcome == PollOutcome.FAILED and error in result.error
    assert result.next_poll_in >= 2.0
    assert fetch.poll_bot(state).outcome == PollOutcome.POLLED


@pytest.mark.django_db
def test_a_network_error_is_a_failure_with_backoff(b24: FakeBitrix24) -> None:
    _, state = _setup(b24)
    portal = state.bot.portal
    with FakeBitrix24() as gone:
        dead = gone.rest_url
    portal.client_endpoint = dead
    portal.save()
    result = fetch.poll_bot(state)
    assert result.outcome == PollOutcome.FAILED and "NETWORK_ERROR" in result.error
    assert dead not in result.error


def test_backoff_doubles_up_to_the_cap(settings: Any) -> None:
    settings.IMBOT_FETCH_BACKOFF = 2.0
    settings.IMBOT_FETCH_MAX_BACKOFF = 60.0
    middle = [schedule.backoff_delay(n, rng=lambda: 0.5) for n in range(1, 8)]
    assert middle == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert schedule.backoff_delay(3, rng=lambda: 0.0) == 4.0  # jitter 0.5 ...
    assert schedule.backoff_delay(3, rng=lambda: 1.0) == 12.0  # ... to 1.5
    assert schedule.backoff_delay(1, rng=lambda: 0.0) == 2.0  # never under 2 s


def test_intervals_are_checked(settings: Any) -> None:
    settings.IMBOT_FETCH_IDLE_INTERVAL = 4
    with pytest.raises(ImproperlyConfigured, match="5-30"):
        schedule.idle_interval()
    settings.IMBOT_FETCH_IDLE_INTERVAL = 31
    with pytest.raises(ImproperlyConfigured):
        schedule.idle_interval()
    settings.IMBOT_FETCH_BUSY_INTERVAL = 1.5
    with pytest.raises(ImproperlyConfigured, match="at least 2"):
        schedule.busy_interval()
    settings.IMBOT_FETCH_LIMIT = 1001
    with pytest.raises(ImproperlyConfigured):
        schedule.fetch_limit()


@pytest.mark.django_db
def test_has_more_schedules_the_next_call_after_the_busy_pause(
    b24: FakeBitrix24, settings: Any
) -> None:
    settings.IMBOT_FETCH_BUSY_INTERVAL = 3
    events, state = _setup(b24)
    _fill(b24, events, 5)
    first = fetch.poll_bot(state, limit=2)
    assert first.has_more and first.next_poll_in == 3 and first.stored == 2
    state.refresh_from_db()
    assert state.next_poll_at is not None
    while fetch.poll_bot(state, limit=2).has_more:
        pass
    assert Event.objects.count() == 5


@pytest.mark.django_db
def test_an_invalid_item_is_kept_as_invalid_and_acknowledged(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)
    good = _fill(b24, events, 1)
    bad = b24.v2.enqueue(events.member_id, events.bot_id, "ONIMBOTV2MESSAGEADD", {"bot": {}})
    result = fetch.poll_bot(state)
    assert (result.stored, result.invalid) == (2, 1)
    invalid = Event.objects.get(status=Event.Status.INVALID)
    assert invalid.payload["eventId"] == bad and "bot" in invalid.error
    state.refresh_from_db()
    assert state.offset == bad + 1 > good[0]


@pytest.mark.django_db
def test_an_answer_with_more_events_than_asked_is_refused(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)

    class Liar(RestClient):
        def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
            answer = super().call(method, params)
            answer["events"] = answer["events"] * 3
            return answer

    _fill(b24, events, 2)
    result = fetch.poll_bot(state, client=Liar(state.bot.portal), limit=2)
    assert result.outcome == PollOutcome.FAILED and "INVALID_RESULT" in result.error
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_query_count_per_event_is_flat(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)
    _fill(b24, events, 1)
    fetch.poll_bot(state)  # the bot, chat and user rows exist from here on

    def queries_for(count: int) -> int:
        _fill(b24, events, count)
        with CaptureQueriesContext(connection) as captured:
            assert fetch.poll_bot(state).stored == count
        return len(captured)

    ten, twenty = queries_for(10), queries_for(20)
    per_event = (twenty - ten) / 10
    assert per_event <= 8, f"{per_event} queries per stored event"
    assert ten - 10 * per_event <= 12, f"{ten - 10 * per_event} queries per poll"


# --------------------------------------------------------------------------- the lease


@pytest.mark.django_db
def test_the_lease_has_one_holder_until_it_expires(b24: FakeBitrix24) -> None:
    _, state = _setup(b24)
    now = timezone.now()
    assert fetch.claim(state, "a", now=now)
    assert not fetch.claim(state, "b", now=now)
    assert fetch.claim(state, "a", now=now)  # renewing one's own
    busy = fetch.poll_bot(state, owner="b")
    assert busy.outcome == PollOutcome.BUSY and busy.next_poll_in >= 2.0
    assert b24.calls_to("imbot.v2.Event.get") == []
    later = now + timedelta(seconds=121)
    assert fetch.claim(state, "b", now=later)  # a dead holder's lease runs out
    fetch.release(state, "a")  # not a's any more: nothing happens
    assert BotFetchState.objects.get(pk=state.pk).claimed_by == "b"


@pytest.mark.django_db
def test_losing_the_lease_mid_poll_rolls_the_page_back(b24: FakeBitrix24) -> None:
    events, state = _setup(b24)
    _fill(b24, events, 2)

    class Usurped(RestClient):
        def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
            answer = super().call(method, params)
            BotFetchState.objects.filter(pk=state.pk).update(claimed_by="usurper")
            return answer

    result = fetch.poll_bot(state, client=Usurped(state.bot.portal))
    assert result.outcome == PollOutcome.LEASE_LOST
    assert not Event.objects.exists()
    state.refresh_from_db()
    assert state.offset == 0 and state.claimed_by == "usurper"


@pytest.mark.django_db
def test_due_states(b24: FakeBitrix24) -> None:
    _, state = _setup(b24)
    now = timezone.now()
    assert list(fetch.due_states(now)) == [state]
    BotFetchState.objects.filter(pk=state.pk).update(next_poll_at=now + timedelta(seconds=5))
    assert list(fetch.due_states(now)) == []
    assert list(fetch.due_states(now + timedelta(seconds=6))) == [state]
    fetch.claim(state, "x", now=now)
    assert list(fetch.due_states(now + timedelta(seconds=6))) == []


def _race(fake: FakeBitrix24, pollers: int, rounds: int) -> None:
    """``pollers`` threads poll one bot ``rounds`` times each; Event.get is never concurrent."""
    events, state = _setup(fake)
    ids = _fill(fake, events, 30)
    in_flight = [0]
    most = [0]
    guard = threading.Lock()

    class Watched(RestClient):
        def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
            with guard:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            try:
                return super().call(method, params)
            finally:
                with guard:
                    in_flight[0] -= 1

    barrier = threading.Barrier(pollers)
    outcomes: list[PollOutcome] = []
    failures: list[BaseException] = []

    def poll() -> None:
        try:
            own = BotFetchState.objects.select_related("bot__portal").get(pk=state.pk)
            barrier.wait(timeout=10)
            for _ in range(rounds):
                client = Watched(own.bot.portal)
                outcomes.append(fetch.poll_bot(own, client=client, limit=7).outcome)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures, failures
    assert most[0] == 1, "two pollers called Event.get for one bot at once"
    assert PollOutcome.FAILED not in outcomes
    assert len(outcomes) == pollers * rounds
    # Whoever polled, every event is stored exactly once (or still queued, not acknowledged).
    stored = sorted(e.payload["eventId"] for e in Event.objects.all())
    assert len(stored) == len(set(stored))
    queued = fake.v2.queued(events.member_id, events.bot_id)
    assert set(stored) | set(queued) == set(ids)
    while fetch.poll_bot(state, limit=7).outcome != PollOutcome.EMPTY:
        pass
    assert sorted(e.payload["eventId"] for e in Event.objects.all()) == ids


@pytest.mark.django_db(transaction=True)
def test_two_pollers_never_hold_one_bots_lease_at_once(b24: FakeBitrix24) -> None:
    _race(b24, pollers=2, rounds=6)


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_four_pollers_on_postgresql(b24: FakeBitrix24) -> None:
    _race(b24, pollers=4, rounds=6)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda answer: ["not", "an", "object"], "without an events list"),
        (lambda answer: {**answer, "events": "none"}, "without an events list"),
        (lambda answer: {**answer, "nextOffset": "12"}, "nextOffset is not an integer"),
        (lambda answer: {**answer, "nextOffset": True}, "nextOffset is not an integer"),
        (lambda answer: {**answer, "nextOffset": 0}, "does not pass the page's last eventId"),
    ],
)
def test_a_malformed_event_get_answer_acknowledges_nothing(
    b24: FakeBitrix24, tamper: Any, reason: str
) -> None:
    events, state = _setup(b24)

    class Tampered(RestClient):
        def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
            return tamper(super().call(method, params))

    ids = _fill(b24, events, 2)
    result = fetch.poll_bot(state, client=Tampered(state.bot.portal))
    assert result.outcome == PollOutcome.FAILED
    assert "INVALID_RESULT" in result.error and reason in result.error
    assert not Event.objects.exists()
    state.refresh_from_db()
    assert state.offset == 0 and state.failures == 1
    assert b24.v2.queued(events.member_id, events.bot_id) == ids
