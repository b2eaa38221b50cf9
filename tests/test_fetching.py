"""The worker's fetch thread, one tick at a time in this process: which bots it polls, and
that a stored page wakes the runners (the real-process tests are tests/test_worker_fetch.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from imbot_app.dispatch.worker.fetching import Fetcher, fetch_bots, sync_states
from imbot_app.models import Bot, BotFetchState, Event, Portal
from imbot_app.testing import FakeBitrix24, V2EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def b24() -> Iterator[FakeBitrix24]:
    with FakeBitrix24() as fake:
        yield fake


def _fetch_bot(fake: FakeBitrix24, **kwargs: Any) -> V2EventFactory:
    events = V2EventFactory.connected(fake, **kwargs)
    Bot.objects.filter(bot_id=events.bot_id).update(api="v2", event_mode="fetch")
    return events


def _fetcher() -> tuple[Fetcher, list[int]]:
    woken: list[int] = []
    fetcher = Fetcher(stopping=threading.Event(), wake_runners=lambda: woken.append(1))
    return fetcher, woken


def test_only_live_fetch_mode_v2_bots_on_installed_portals_are_polled(b24) -> None:
    polled = _fetch_bot(b24, code="polled")
    webhook = _fetch_bot(b24, code="webhook")
    Bot.objects.filter(bot_id=webhook.bot_id).update(event_mode="webhook")
    v1 = _fetch_bot(b24, code="v1")
    Bot.objects.filter(bot_id=v1.bot_id).update(api="v1")
    deleted = _fetch_bot(b24, code="deleted")
    Bot.objects.filter(bot_id=deleted.bot_id).update(deleted_at=timezone.now())
    gone = _fetch_bot(b24, code="gone")
    Portal.objects.filter(member_id=gone.member_id).update(status=Portal.Status.UNINSTALLED)

    assert list(fetch_bots().values_list("code", flat=True)) == ["polled"]
    fetcher, _ = _fetcher()
    fetcher.tick()

    calls = b24.calls_to("imbot.v2.Event.get")
    assert [c.params["botId"] for c in calls] == [polled.bot_id]
    assert calls[0].params["limit"] == 1000
    assert list(BotFetchState.objects.values_list("bot__code", flat=True)) == ["polled"]
    assert sync_states() == 0  # created once


def test_a_stored_page_wakes_the_runners_and_the_next_tick_waits(b24) -> None:
    events = _fetch_bot(b24)
    ids = [events.enqueue(b24, events.message_add(f"m{i}")) for i in range(3)]
    fetcher, woken = _fetcher()

    wait = fetcher.tick()

    assert woken == [1]
    assert sorted(e.payload["eventId"] for e in Event.objects.all()) == ids
    assert {e.status for e in Event.objects.all()} == {Event.Status.RECEIVED}  # the runners' job
    assert fetcher.counters.stored == 3 and fetcher.counters.polls == 1
    assert 0 < wait <= 1.0
    # Not due again before IMBOT_FETCH_IDLE_INTERVAL: a second tick calls nothing.
    fetcher.tick()
    assert len(b24.calls_to("imbot.v2.Event.get")) == 1
    assert woken == [1]


def test_a_failed_poll_is_counted_and_wakes_nobody(b24) -> None:
    _fetch_bot(b24)
    b24.fail_method("imbot.v2.Event.get", status=503, error="QUERY_LIMIT_EXCEEDED")
    fetcher, woken = _fetcher()
    fetcher.tick()
    assert (fetcher.counters.failures, woken) == (1, [])
    assert "QUERY_LIMIT_EXCEEDED" in fetcher.counters.last_error
    assert "1 failed" in fetcher.counters.describe()
