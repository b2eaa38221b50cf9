"""IMBOT_DISPATCH = "celery" with a real Redis broker and a real ``celery -A project worker``.

The worker is a subprocess on a queue of this test run's own, pointed at the test database
(a file with SQLite, ``test_<name>`` with PostgreSQL), loading tests/celery_handlers.py.  The
tests post events through the endpoint and look at what the worker left in the database.
Messages go to group chats, where the example project's handler (which answers private
messages through Bitrix24) stays out of the way.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction

from imbot_app.dispatch.claims import worker_name
from imbot_app.dispatch.hooks import enqueue
from imbot_app.models import Event, HandlerRun
from imbot_app.testing import EventFactory, post_event

from .worker_kit import ChildProcess, database_url

redis = pytest.importorskip("redis")
pytest.importorskip("celery")

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 45.0
EVENT_TIMEOUT = 30.0
# Short enough to see a killed worker's event come back within seconds.
LEASE_SECONDS = 2
TRANSPORT_OPTIONS = {
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

pytestmark = pytest.mark.django_db(transaction=True)


def _broker() -> Any:
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {django_settings.CELERY_BROKER_URL}: {exc}")
    return client


class Worker(ChildProcess):
    """One ``celery -A project worker`` subprocess with its own log file."""

    stop_timeout = 10.0

    def __init__(self, queue: str, env: dict[str, str], log_dir: Path, index: int) -> None:
        self.name = f"imbot-test-{uuid.uuid4().hex[:8]}-{index}"
        self.log_path = log_dir / f"{self.name}.log"
        self.queue = queue
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "worker",
            "-Q",
            self.queue,
            "-n",
            f"{self.name}@%h",
            "--pool=solo",
            "--concurrency=1",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Worker:
        """Wait for the worker's "<name>@<host> ready." line (it then consumes the queue)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if f"{self.name}@" in self.log() and " ready." in self.log():
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"worker not ready after {timeout}s:\n{self.log()}")


class Workers:
    """The worker the tests talk to, replaceable (one test kills it)."""

    def __init__(self, queue: str, env: dict[str, str], folder: Path) -> None:
        self.queue = queue
        self.env = env
        self.folder = folder
        self.all: list[Worker] = []
        self.current = self.start()

    def start(self) -> Worker:
        worker = Worker(self.queue, self.env, self.folder, len(self.all))
        self.all.append(worker)
        self.current = worker.start().wait_ready()
        return self.current

    def stop_all(self) -> None:
        for worker in self.all:
            worker.stop()


@pytest.fixture(scope="module")
def workers(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    broker = _broker()
    queue = f"imbot-test-{uuid.uuid4().hex}"
    folder = tmp_path_factory.mktemp("celery")
    records = folder / "records"
    records.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": database_url(short_locks=True),
        "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
        "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(TRANSPORT_OPTIONS),
        "IMBOT_HANDLER_MODULES": "tests.celery_handlers",
        "IMBOT_DISPATCH": "celery",
        "IMBOT_DISPATCH_LEASE": str(LEASE_SECONDS),
        "IMBOT_TEST_RECORD_DIR": str(records),
        "PYTHONUNBUFFERED": "1",
    }
    pool = Workers(queue, env, folder)
    try:
        yield pool
    finally:
        pool.stop_all()
        broker.delete(queue)


@pytest.fixture
def celery_mode(settings: Any, workers: Workers) -> Workers:
    settings.IMBOT_DISPATCH = "celery"
    settings.IMBOT_CELERY_QUEUE = workers.queue
    return workers


def records(workers: Workers, event_id: int) -> list[dict[str, Any]]:
    folder = Path(workers.env["IMBOT_TEST_RECORD_DIR"])
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{event_id}-*.json"))]


def wait_for(check: Callable[[], bool], what: str, workers: Workers) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{workers.current.log()[-4000:]}")


def processed(event_id: int) -> Callable[[], bool]:
    return lambda: Event.objects.get(pk=event_id).status == Event.Status.PROCESSED


def succeeded(event_id: int, handler: str) -> list[HandlerRun]:
    return list(
        HandlerRun.objects.filter(
            event_id=event_id, handler=handler, status=HandlerRun.Status.SUCCEEDED
        )
    )


RECORD = "tests.celery_handlers.record_worker"
CHAT = 4100
SLOW = "tests.celery_handlers.slow"


# --------------------------------------------------------------------------- tests


def test_a_worker_runs_the_handlers_not_the_web_process(client, celery_mode) -> None:
    factory = EventFactory.installed()
    response = post_event(client, factory.message("celery hello", chat_id=CHAT))
    assert response.status_code == 200
    event_id = response.json()["event_id"]

    wait_for(processed(event_id), "the event to be processed", celery_mode)
    [run] = succeeded(event_id, RECORD)
    assert run.worker == f"{run.worker.split(':')[0]}:{celery_mode.current.pid}"
    assert run.worker != worker_name()
    [record] = records(celery_mode, event_id)
    assert record["pid"] == celery_mode.current.pid != os.getpid()


def test_the_webhook_answers_before_a_slow_handler_finishes(client, celery_mode) -> None:
    factory = EventFactory.installed()
    response = post_event(client, factory.message("slow 1.5", chat_id=CHAT))
    assert response.status_code == 200
    event_id = response.json()["event_id"]
    # The answer is out; the handler has not finished (it sleeps 1.5 s in the worker).
    assert Event.objects.get(pk=event_id).status == Event.Status.RECEIVED
    assert not succeeded(event_id, SLOW)

    wait_for(processed(event_id), "the slow event to be processed", celery_mode)
    [run] = succeeded(event_id, SLOW)
    assert run.duration_ms is not None and run.duration_ms >= 1500


def test_more_deliveries_of_a_finished_event_run_nothing_again(client, celery_mode) -> None:
    factory = EventFactory.installed()
    event_id = post_event(client, factory.message("celery twice", chat_id=CHAT)).json()["event_id"]
    wait_for(processed(event_id), "the event to be processed", celery_mode)

    enqueue(event_id)
    enqueue(event_id)
    log = celery_mode.current.log
    wait_for(
        lambda: log().count("'already_done'") >= 2,
        "both extra copies to be consumed",
        celery_mode,
    )
    assert len(succeeded(event_id, RECORD)) == 1
    assert len(records(celery_mode, event_id)) == 1
    assert Event.objects.get(pk=event_id).dispatch_attempts == 1


def test_a_worker_killed_mid_handler_leaves_the_event_to_a_new_one(client, celery_mode) -> None:
    factory = EventFactory.installed()
    payload = factory.message("slow 3 celery", chat_id=CHAT)
    event_id = post_event(client, payload).json()["event_id"]
    killed = celery_mode.current
    wait_for(
        lambda: HandlerRun.objects.filter(
            event_id=event_id, handler=SLOW, status=HandlerRun.Status.RUNNING
        ).exists(),
        "the slow handler to start",
        celery_mode,
    )
    killed.kill()
    assert sorted(r["handler"] for r in records(celery_mode, event_id)) == [
        "record_worker",
        "slow_started",
    ]
    assert Event.objects.get(pk=event_id).status == Event.Status.RECEIVED

    replacement = celery_mode.start()
    wait_for(processed(event_id), "the new worker to finish the event", celery_mode)

    [done] = succeeded(event_id, SLOW)
    assert done.worker.endswith(f":{replacement.pid}")
    [abandoned] = HandlerRun.objects.filter(
        event_id=event_id, handler=SLOW, status=HandlerRun.Status.FAILED
    )
    assert abandoned.worker.endswith(f":{killed.pid}")
    assert abandoned.error.startswith("abandoned")
    # The handler that had finished before the kill was not run a second time.
    assert len(succeeded(event_id, RECORD)) == 1
    handlers = sorted(r["handler"] for r in records(celery_mode, event_id))
    assert handlers == ["record_worker", "slow_finished", "slow_started", "slow_started"]
    assert Event.objects.get(pk=event_id).dispatch_attempts >= 2


def test_database_errors_are_retried_with_backoff(client, celery_mode, settings) -> None:
    factory = EventFactory.installed()
    # Store the event without starting it: its task goes to a queue nobody reads.
    parking = f"{celery_mode.queue}-parking"
    settings.IMBOT_CELERY_QUEUE = parking
    payload = factory.message("celery locked", chat_id=CHAT)
    event_id = post_event(client, payload).json()["event_id"]
    _broker().delete(parking)
    settings.IMBOT_CELERY_QUEUE = celery_mode.queue

    # Hold a lock the worker's first query waits for longer than it may: the query fails.
    error = "database is locked" if connection.vendor == "sqlite" else "lock timeout"
    with hold_event_table_lock():
        enqueue(event_id)
        wait_for(
            lambda: error in celery_mode.current.log(), "the worker to hit the lock", celery_mode
        )

    wait_for(processed(event_id), "the retried task to process the event", celery_mode)
    retries = [
        line
        for line in celery_mode.current.log().splitlines()
        if "retry: Retry in" in line and error in line
    ]
    assert retries, celery_mode.current.log()[-3000:]
    assert len(succeeded(event_id, RECORD)) == 1


@contextmanager
def hold_event_table_lock() -> Iterator[None]:
    """SQLite: the database's write lock; PostgreSQL: an exclusive lock on the event table."""
    if connection.vendor == "sqlite":
        locker = sqlite3.connect(str(connection.settings_dict["NAME"]), isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {Event._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        yield


def test_a_handler_longer_than_the_lease_keeps_its_claim(client, celery_mode) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from imbot_app.dispatch.claims import Outcome
    from imbot_app.dispatch.runner import run_event

    factory = EventFactory.installed()
    payload = factory.message(f"slow {LEASE_SECONDS * 3} celery", chat_id=CHAT)
    event_id = post_event(client, payload).json()["event_id"]
    running = HandlerRun.objects.filter(
        event_id=event_id, handler=SLOW, status=HandlerRun.Status.RUNNING
    )
    wait_for(running.exists, "the slow handler to start", celery_mode)
    started = running.get().started_at
    past_the_lease = started + timedelta(seconds=LEASE_SECONDS * 1.5)
    wait_for(lambda: timezone.now() > past_the_lease, "the first lease to run out", celery_mode)

    # The worker's heartbeat renewed the claim: another process backs off.
    assert run_event(event_id).outcome is Outcome.BUSY
    wait_for(processed(event_id), "the slow event to be processed", celery_mode)
    assert len(succeeded(event_id, SLOW)) == 1
    assert [r["handler"] for r in records(celery_mode, event_id)].count("slow_started") == 1
