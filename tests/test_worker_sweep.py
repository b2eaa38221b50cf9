"""Celery mode with the broker down while events arrive: the sweep sends them once it is back.

Everything is real: the web side is a subprocess posting events through the endpoint with
``CELERY_BROKER_URL`` pointing at a port where nothing listens (so the tasks cannot be sent and
the events stay ``received``), then a real ``redis-server`` is started on that very port, with
a real Celery worker and ``imbot_worker`` (which in Celery mode runs the sweep).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imbot_app.models import Event, HandlerRun

from .worker_kit import ROOT, WorkerProcess, database_url, wait_for

pytest.importorskip("redis")
pytest.importorskip("celery")

pytestmark = pytest.mark.django_db(transaction=True)

RECORD = "tests.celery_handlers.record_worker"
EVENTS = 3

POSTER = """
import json
from imbot_app.testing import EventFactory, post_event
from django.test import Client
factory = EventFactory.installed()
client = Client()
ids = []
for n in range({events}):
    response = post_event(client, factory.message(f"outage {{n}} celery", chat_id=4300))
    assert response.status_code == 200, response.content
    ids.append(response.json()["event_id"])
print("IDS " + json.dumps(ids))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A port nothing listens on yet; whatever redis-server the test starts there is stopped."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    yield port
    for process in _servers:
        process.terminate()
        process.wait(timeout=10)
    _servers.clear()


_servers: list[subprocess.Popen[bytes]] = []


def start_redis(port: int, folder: Path) -> None:
    server = shutil.which("redis-server")
    assert server is not None
    process = subprocess.Popen(  # noqa: S603
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _servers.append(process)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(answers, f"redis-server on port {port}")


def test_events_stored_while_the_broker_is_down_are_run_by_the_sweep(
    tmp_path: Path, redis_port: int
) -> None:
    records = tmp_path / "records"
    records.mkdir()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "IMBOT_DISPATCH": "celery",
        "IMBOT_REQUEUE_AFTER": "1",
        "IMBOT_HANDLER_MODULES": "tests.celery_handlers",
        "IMBOT_TEST_RECORD_DIR": str(records),
        "IMBOT_SENDER": "imbot_app.outbound.calls.PendingSender",
        "IMBOT_REGISTER_ON_INSTALL": "False",
        "PYTHONUNBUFFERED": "1",
    }
    # 1. The broker is down while the events arrive: the webhook still answers 200.
    poster = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", POSTER.format(events=EVENTS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert poster.returncode == 0, poster.stderr[-3000:]
    [ids_line] = [line for line in poster.stdout.splitlines() if line.startswith("IDS ")]
    ids = json.loads(ids_line[4:])
    assert len(ids) == EVENTS
    assert "could not be started in celery mode" in poster.stderr
    assert Event.objects.filter(pk__in=ids, status=Event.Status.RECEIVED).count() == EVENTS

    # 2. The broker comes back; a Celery worker, and imbot_worker sweeping.
    start_redis(redis_port, tmp_path)
    celery = WorkerProcess(
        env,
        tmp_path,
        "-A",
        "project",
        "worker",
        "--pool=solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "info",
        command="celery",
    )
    celery.args = [sys.executable, "-m", "celery", *celery.args[3:]]
    sweeper = WorkerProcess(env, tmp_path, "--idle-sleep", "0.5")
    try:
        celery.start(ready=" ready.")
        sweeper.start(ready="Celery mode")
        waiting = Event.objects.filter(pk__in=ids, status=Event.Status.RECEIVED)
        wait_for(lambda: not waiting.exists(), "the swept events to run", sweeper, celery)
    finally:
        sweeper.stop()
        celery.stop()

    assert Event.objects.filter(pk__in=ids, status=Event.Status.PROCESSED).count() == EVENTS
    for event_id in ids:
        assert HandlerRun.objects.filter(event_id=event_id, handler=RECORD).count() == 1
        assert len(list(records.glob(f"{event_id}-record_worker-*.json"))) == 1
    assert "sent" in sweeper.log() and "stranded" in sweeper.log()
