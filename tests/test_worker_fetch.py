"""Fetch mode inside real ``manage.py imbot_worker`` processes, against the real fake Bitrix24.

The fake serves ``imbot.v2.Event.get`` on 127.0.0.1 from this process; the workers are
subprocesses on the test database.  The handlers are tests/celery_handlers.py's: v1-style
``@on_message`` handlers, which write a record file per run, so a run twice would show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from imbot_app.models import Bot, BotFetchState, Event, HandlerRun
from imbot_app.testing import FakeBitrix24, V2EventFactory

from .test_worker import RECORD, Kit
from .worker_kit import WorkerProcess, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

EVENT_GET = "imbot.v2.Event.get"


class FetchKit(Kit):
    def __init__(self, folder: Path, fake: FakeBitrix24) -> None:
        super().__init__(folder)
        self.fake = fake
        self.env.update(
            {
                "IMBOT_ENDPOINT_HOSTS": "127.0.0.1",
                # Long: after a page is stored, no further Event.get comes for 30 s.
                "IMBOT_FETCH_IDLE_INTERVAL": "30",
                "IMBOT_FETCH_LEASE": "20",
            }
        )
        self.events = V2EventFactory.connected(fake)
        Bot.objects.filter(bot_id=self.events.bot_id).update(api="v2", event_mode="fetch")

    def enqueue(self, count: int, start: int = 0) -> list[int]:
        """Queue ``count`` group messages the ``record_worker`` handler answers."""
        return [
            self.events.enqueue(
                self.fake, self.events.message_add(f"fetched {start + i} celery", group=True)
            )
            for i in range(count)
        ]

    def stored(self, event_id: int) -> Event | None:
        return Event.objects.filter(payload__eventId=event_id).first()

    def all_processed(self, ids: list[int]) -> Callable[[], bool]:
        def check() -> bool:
            stored = Event.objects.filter(
                name="ONIMBOTV2MESSAGEADD", status=Event.Status.PROCESSED
            ).values_list("payload", flat=True)
            return {p["eventId"] for p in stored} >= set(ids)

        return check

    def offsets_sent(self) -> list[Any]:
        return [call.params.get("offset") for call in self.fake.calls_to(EVENT_GET)]


@pytest.fixture
def fkit(settings: Any, tmp_path: Path, transactional_db: None) -> Iterator[FetchKit]:
    settings.IMBOT_DISPATCH = "worker"
    with FakeBitrix24() as fake:
        kit = FetchKit(tmp_path, fake)
        try:
            yield kit
        finally:
            for process in kit.started:
                process.stop()


def _runs_per_event() -> dict[int, int]:
    counts: dict[int, int] = {}
    for event_id in HandlerRun.objects.filter(
        handler=RECORD, status=HandlerRun.Status.SUCCEEDED
    ).values_list("event_id", flat=True):
        counts[event_id] = counts.get(event_id, 0) + 1
    return counts


def test_a_worker_killed_after_storing_a_page_loses_nothing_and_runs_nothing_twice(
    fkit: FetchKit,
) -> None:
    ids = fkit.enqueue(3)
    first = fkit.worker()
    wait_for(fkit.all_processed(ids), "the first page stored and handled", first)
    state = BotFetchState.objects.get(bot__bot_id=fkit.events.bot_id)
    assert state.offset == ids[-1] + 1 and state.events_stored == 3
    # Stored and handled, but not acknowledged: only the first Event.get (no offset) was
    # sent, and the next one is 30 s away.  Bitrix24 still holds the events.
    assert fkit.offsets_sent() == [None]
    assert fkit.fake.v2.queued(fkit.events.member_id, fkit.events.bot_id) == ids

    first.kill()  # SIGKILL: no clean-up of any kind
    later = fkit.enqueue(2, start=3)
    # (Time passing: the bot is due now rather than in 30 s.)
    BotFetchState.objects.update(next_poll_at=None)
    second = fkit.worker()
    wait_for(fkit.all_processed(later), "the second worker to fetch and handle the rest", second)

    # It sent the stored offset: the first page was acknowledged, never fetched again.
    assert fkit.offsets_sent() == [None, ids[-1] + 1]
    stored = list(Event.objects.filter(name="ONIMBOTV2MESSAGEADD"))
    assert sorted(e.payload["eventId"] for e in stored) == ids + later
    runs = _runs_per_event()
    assert runs == {e.pk: 1 for e in stored}
    for event in stored:
        assert [r["handler"] for r in fkit.records(event.pk)] == ["record_worker"]
        assert event.dispatch_attempts == 1
    by_first = {e.pk for e in stored if e.payload["eventId"] in ids}
    assert all(
        run.worker.endswith(f":{first.pid}")
        for run in HandlerRun.objects.filter(event_id__in=by_first)
    )


def test_event_get_answering_503_is_backed_off_then_recovers(fkit: FetchKit) -> None:
    fkit.fake.fail_method(EVENT_GET, count=2, status=503, error="QUERY_LIMIT_EXCEEDED")
    ids = fkit.enqueue(4)
    worker = fkit.worker()
    worker.wait_for_log("QUERY_LIMIT_EXCEEDED")
    failing = BotFetchState.objects.get(bot__bot_id=fkit.events.bot_id)
    assert failing.failures >= 1 and "QUERY_LIMIT_EXCEEDED" in failing.last_error
    assert failing.offset == 0 and not Event.objects.exists()

    wait_for(fkit.all_processed(ids), "the events once Event.get recovers", worker)

    state = BotFetchState.objects.get(pk=failing.pk)
    assert (state.failures, state.last_error) == (0, "")
    assert state.offset == ids[-1] + 1
    # Two refused calls, then the one that worked; nothing was acknowledged before it.
    assert fkit.offsets_sent()[:3] == [None, None, None]
    assert Event.objects.count() == 4
    assert set(_runs_per_event().values()) == {1}


@pytest.mark.postgres
def test_two_workers_never_poll_one_bot_at_once(fkit: FetchKit) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("two workers on one database need PostgreSQL (on SQLite run one)")
    fkit.env["IMBOT_FETCH_IDLE_INTERVAL"] = "5"
    in_flight, peak = [0], [0]
    lock = threading.Lock()
    serve = fkit.fake._serve

    def counting(request: Any) -> None:
        polling = EVENT_GET in request.path
        if polling:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
        try:
            if polling:
                time.sleep(0.3)  # a window wide enough for an overlapping poll to show in
            serve(request)
        finally:
            if polling:
                with lock:
                    in_flight[0] -= 1

    fkit.fake._serve = counting  # type: ignore[method-assign]
    ids = fkit.enqueue(300)
    workers = [fkit.worker("--fetch-limit", "50") for _ in range(2)]
    wait_for(fkit.all_processed(ids), "300 events fetched by two workers", *workers)
    # Both kept asking until the queue was drained and acknowledged.
    wait_for(lambda: len(fkit.offsets_sent()) >= 7, "the acknowledging poll", *workers)

    assert peak[0] == 1
    sent = [o for o in fkit.offsets_sent() if o is not None]
    assert sent == sorted(sent)  # never the same page twice from two pollers
    assert len(set(sent[:6])) == len(sent[:6])
    assert Event.objects.count() == 300
    assert set(_runs_per_event().values()) == {1}
    assert len(_runs_per_event()) == 300


def test_no_fetch_leaves_the_bots_alone(fkit: FetchKit) -> None:
    fkit.enqueue(1)
    worker: WorkerProcess = fkit.worker("--no-fetch", "--once", ready=None)
    assert worker.wait() == 0
    assert fkit.fake.calls_to(EVENT_GET) == []
    once = fkit.worker("--once", ready=None)
    assert once.wait() == 0
    assert Event.objects.filter(name="ONIMBOTV2MESSAGEADD").count() == 1
