"""``manage.py imbot_serve`` (``make run``): the server and a worker, stopped together."""

from __future__ import annotations

import os
import signal
import socket

import pytest
import requests

from imbot_app.models import Event, HandlerRun
from imbot_app.testing import EventFactory, encode_event

from .worker_kit import WorkerProcess, database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_one_command_serves_runs_handlers_and_stops_both(tmp_path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "IMBOT_DISPATCH": "worker",
        "IMBOT_HANDLER_MODULES": "tests.celery_handlers",
        "IMBOT_TEST_RECORD_DIR": str(records),
        "IMBOT_SENDER": "imbot_app.outbound.calls.PendingSender",
        "IMBOT_REGISTER_ON_INSTALL": "False",
        "PYTHONUNBUFFERED": "1",
    }
    serve = WorkerProcess(env, tmp_path, f"127.0.0.1:{port}", command="imbot_serve")
    serve.start(ready="runner(s)")
    try:
        url = f"http://127.0.0.1:{port}/imbot/events/"
        wait_for(lambda: _answers(url), "the development server", serve)
        factory = EventFactory.installed()
        response = requests.post(
            url,
            data=encode_event(factory.message("served celery", chat_id=4400)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        event_id = response.json()["event_id"]
        done = Event.objects.filter(pk=event_id, status=Event.Status.PROCESSED)
        wait_for(done.exists, "the worker to run the handlers", serve)
        [run] = HandlerRun.objects.filter(event_id=event_id)
        assert run.handler == "tests.celery_handlers.record_worker"

        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0, serve.log()
        assert "stopped: done 1" in serve.log()
        assert not _answers(url)
    finally:
        serve.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 405
    except requests.RequestException:
        return False
