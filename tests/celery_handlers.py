"""Handlers the Celery worker of tests/test_celery.py loads (``IMBOT_HANDLER_MODULES``).

Each writes a small JSON record of who ran it (pid, host) into ``IMBOT_TEST_RECORD_DIR`` so the
test process can see what happened inside the worker.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from imbot_app import on_message
from imbot_app.dispatch.context import MessageContext


def _record(message: MessageContext, handler: str, **extra: object) -> None:
    folder = Path(os.environ["IMBOT_TEST_RECORD_DIR"])
    record = {
        "event_id": message.event.pk,
        "handler": handler,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        **extra,
    }
    path = folder / f"{message.event.pk}-{handler}-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(record))


@on_message(regex=r"\bcelery\b")
def record_worker(message: MessageContext) -> None:
    """Say which process ran it."""
    _record(message, "record_worker")


@on_message(regex=r"^slow (?P<seconds>[\d.]+)")
def slow(message: MessageContext, seconds: str) -> None:
    """Take a while: long enough to answer the webhook first, or to be killed in the middle."""
    _record(message, "slow_started")
    time.sleep(float(seconds))
    _record(message, "slow_finished")
