"""IMBOT_DISPATCH = "worker": real ``manage.py imbot_worker`` processes on the test database.

The tests post events through the endpoint (in this process, which only stores them) and look
at what the worker subprocesses left in the database and in the record files the handlers of
tests/celery_handlers.py write.  Messages go to group chats, where the example project's
handler (which answers private messages through Bitrix24) stays out of the way.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from imbot_app.models import Event, HandlerRun, WorkerHeartbeat
from imbot_app.testing import EventFactory, post_event

from .worker_kit import WorkerProcess, database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RECORD = "tests.celery_handlers.record_worker"
SLOW = "tests.celery_handlers.slow"
CHAT = 4200
LEASE_SECONDS = 2


class Kit:
    """Starts workers on the test database and reads what their handlers recorded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records_dir = folder / "records"
        self.records_dir.mkdir()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url(),
            "IMBOT_DISPATCH": "worker",
            "IMBOT_HANDLER_MODULES": "tests.celery_handlers",
            "IMBOT_DISPATCH_LEASE": str(LEASE_SECONDS),
            "IMBOT_TEST_RECORD_DIR": str(self.records_dir),
            "IMBOT_SENDER": "imbot_app.outbound.calls.PendingSender",
            "IMBOT_REGISTER_ON_INSTALL": "False",
            "PYTHONUNBUFFERED": "1",
        }
        self.started: list[WorkerProcess] = []
        self.factory: EventFactory | None = None

    def worker(self, *args: str, ready: str | None = "runner(s)") -> WorkerProcess:
        process = WorkerProcess(self.env, self.folder, "--idle-sleep", "0.2", *args)
        self.started.append(process)
        return process.start(ready=ready)

    def records(self, event_id: int) -> list[dict[str, Any]]:
        return [
            json.loads(p.read_text()) for p in sorted(self.records_dir.glob(f"{event_id}-*.json"))
        ]

    def handlers_recorded(self, event_id: int) -> list[str]:
        return sorted(r["handler"] for r in self.records(event_id))


@pytest.fixture
def kit(settings: Any, tmp_path: Path, transactional_db: None) -> Iterator[Kit]:
    settings.IMBOT_DISPATCH = "worker"
    kit = Kit(tmp_path)
    kit.factory = EventFactory.installed()
    try:
        yield kit
    finally:
        for process in kit.started:
            process.stop()


def post(client: Any, kit: Kit, text: str) -> int:
    assert kit.factory is not None
    response = post_event(client, kit.factory.message(text, chat_id=CHAT))
    assert response.status_code == 200, response.content
    return int(response.json()["event_id"])


def processed(event_id: int) -> Callable[[], bool]:
    return lambda: Event.objects.get(pk=event_id).status == Event.Status.PROCESSED


def runs(event_id: int, handler: str, status: str = HandlerRun.Status.SUCCEEDED) -> list[Any]:
    return list(HandlerRun.objects.filter(event_id=event_id, handler=handler, status=status))


def running(event_id: int, handler: str) -> Callable[[], bool]:
    return lambda: bool(runs(event_id, handler, HandlerRun.Status.RUNNING))


# --------------------------------------------------------------------------- the endpoint


def test_the_webhook_only_stores_and_once_runs_what_waits(client, kit) -> None:
    event_id = post(client, kit, "slow 1.5 celery")
    # The answer is out, no handler ran or started: nobody is running workers yet.
    event = Event.objects.get(pk=event_id)
    assert (event.status, event.dispatch_attempts) == (Event.Status.RECEIVED, 0)
    assert not HandlerRun.objects.filter(event_id=event_id).exists()
    assert kit.records(event_id) == []

    once = kit.worker("--once", ready=None)
    assert once.wait() == 0, once.log()
    assert Event.objects.get(pk=event_id).status == Event.Status.PROCESSED
    [slow] = runs(event_id, SLOW)
    assert slow.worker.endswith(f":{once.pid}")
    assert {r["pid"] for r in kit.records(event_id)} == {once.pid}
    assert "done 1, failed 0, waiting 0" in once.log()
    heartbeat = WorkerHeartbeat.objects.get(pid=once.pid)
    assert (heartbeat.events_done, heartbeat.stopped) == (1, True)


def test_worker_mode_costs_the_webhook_no_handler_queries(client, kit) -> None:
    """The store's six statements, plus PostgreSQL's NOTIFY; nothing else in the request."""
    post(client, kit, "warm up celery")
    with CaptureQueriesContext(connection) as context:
        post(client, kit, "counted celery")
    data = [
        q["sql"]
        for q in context.captured_queries
        if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]
    notify = 1 if connection.vendor == "postgresql" else 0
    assert len(data) == 6 + notify, "\n".join(data)
    assert not any("handlerrun" in sql.lower() for sql in data)


def test_max_events_stops_the_worker_after_that_many(client, kit) -> None:
    ids = [post(client, kit, f"limited {n} celery") for n in range(3)]
    limited = kit.worker("--max-events", "2", ready=None)
    assert limited.wait() == 0, limited.log()
    statuses = dict(Event.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["processed", "processed", "received"]
    assert "stopped: done 2, failed 0, waiting 1" in limited.log()


# --------------------------------------------------------------------------- crashes


def test_a_worker_killed_mid_handler_leaves_the_event_to_the_next(client, kit) -> None:
    killed = kit.worker()
    event_id = post(client, kit, "slow 4 celery")
    wait_for(running(event_id, SLOW), "the slow handler to start", killed)
    killed.kill()
    assert kit.handlers_recorded(event_id) == ["record_worker", "slow_started"]
    # The handler that finished before the kill was recorded before the kill.
    assert len(runs(event_id, RECORD)) == 1
    assert Event.objects.get(pk=event_id).status == Event.Status.RECEIVED

    replacement = kit.worker()
    wait_for(processed(event_id), "the second worker to finish the event", replacement)

    [done] = runs(event_id, SLOW)
    assert done.worker.endswith(f":{replacement.pid}")
    [abandoned] = runs(event_id, SLOW, HandlerRun.Status.FAILED)
    assert abandoned.worker.endswith(f":{killed.pid}")
    assert abandoned.error.startswith("abandoned")
    assert len(runs(event_id, RECORD)) == 1
    assert kit.handlers_recorded(event_id) == [
        "record_worker",
        "slow_finished",
        "slow_started",
        "slow_started",
    ]
    assert Event.objects.get(pk=event_id).dispatch_attempts == 2


def test_a_handler_longer_than_the_lease_is_not_run_twice(client, kit) -> None:
    first = kit.worker()
    second = kit.worker()
    event_id = post(client, kit, f"slow {LEASE_SECONDS * 2.5} celery")
    wait_for(processed(event_id), "the slow event to be processed", first, second)
    assert kit.handlers_recorded(event_id) == ["record_worker", "slow_finished", "slow_started"]
    [slow] = runs(event_id, SLOW)
    assert slow.duration_ms is not None and slow.duration_ms >= LEASE_SECONDS * 2500
    assert HandlerRun.objects.filter(event_id=event_id).count() == 2
    assert Event.objects.get(pk=event_id).dispatch_attempts == 1


def test_sigterm_finishes_the_current_event_and_exits_0(client, kit) -> None:
    worker = kit.worker()
    event_id = post(client, kit, "slow 1.5 celery")
    wait_for(running(event_id, SLOW), "the slow handler to start", worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    assert Event.objects.get(pk=event_id).status == Event.Status.PROCESSED
    assert len(runs(event_id, SLOW)) == 1
    assert "stopped: done 1, failed 0" in worker.log()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_two_workers_share_2000_events_and_run_each_once(client, kit) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("several workers need PostgreSQL (FOR UPDATE SKIP LOCKED)")
    total = 2000
    workers = [kit.worker("--batch-size", "25"), kit.worker("--batch-size", "25")]
    assert kit.factory is not None
    with transaction.atomic():  # all visible (and notified) at once, when this commits
        for n in range(total):
            payload = kit.factory.message(f"bulk {n} celery", chat_id=CHAT)
            assert post_event(client, payload).status_code == 200

    waiting = Event.objects.filter(status=Event.Status.RECEIVED)
    wait_for(lambda: not waiting.exists(), "every event to be processed", *workers)
    assert Event.objects.filter(status=Event.Status.PROCESSED).count() == total
    per_event = HandlerRun.objects.values("event_id").annotate(n=Count("id"))
    assert per_event.count() == total
    assert not per_event.filter(n__gt=1).exists()
    assert HandlerRun.objects.filter(status=HandlerRun.Status.SUCCEEDED).count() == total
    assert len(list(kit.records_dir.glob("*-record_worker-*.json"))) == total
    by_worker = dict(
        HandlerRun.objects.values_list("worker").annotate(n=Count("id")).order_by("worker")
    )
    assert {w.rsplit(":", 1)[1] for w in by_worker} == {str(p.pid) for p in workers}
    assert all(n > 0 for n in by_worker.values()), by_worker


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "argv",
    [
        ["--concurrency", "100000"],
        ["--concurrency", "0"],
        ["--idle-sleep", "nan"],
        ["--idle-sleep", "1e308"],
        ["--batch-size", "5000"],
        ["--max-events", "-1"],
        ["--log-every", "x" * 10_000],
    ],
)
def test_hostile_options_are_refused_with_a_reason(argv: list[str]) -> None:
    with pytest.raises(CommandError, match=r"between|not a number"):
        call_command("imbot_worker", *argv)


# --------------------------------------------------------------------------- SQL per batch


@pytest.mark.parametrize("events", [10, 40])
def test_a_batch_costs_five_statements_however_many_events(
    client, kit, isolated_routes, events: int
) -> None:
    """Claim, load, prefetch the messages; one INSERT of the runs, one UPDATE of the events."""
    from datetime import timedelta

    from imbot_app.dispatch.worker.runner import Counters, Limits, Runner

    seen: list[int] = []

    @isolated_routes.on_message
    def noop(message: Any) -> None:
        seen.append(message.event.pk)

    ids = [post(client, kit, f"batch {n}") for n in range(events)]
    runner = Runner(
        0,
        counters=Counters(),
        limits=Limits(once=True),
        stopping=threading.Event(),
        batch_size=100,
        lease=timedelta(seconds=60),
        poll=0.1,
        slow_after=60,
    )
    with CaptureQueriesContext(connection) as context:
        assert runner._batch(100) == events
    data = [
        q["sql"]
        for q in context.captured_queries
        if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]
    assert len(data) == 5, "\n".join(sql[:100] for sql in data)
    assert seen == ids
    assert runner.counters.done == events
    assert Event.objects.filter(pk__in=ids, status=Event.Status.PROCESSED).count() == events
    assert not Event.objects.filter(pk__in=ids).exclude(claimed_by="").exists()
    assert HandlerRun.objects.filter(event_id__in=ids, status="succeeded").count() == events
