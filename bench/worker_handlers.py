"""Handlers bench/worker.py's imbot_worker processes load (``IMBOT_HANDLER_MODULES``).

``bench ...`` messages: a no-op, so what is measured is imbot_app's own work per event.
``probe ...`` messages: write the event id and the moment the handler started to
``IMBOT_BENCH_LATENCY_FILE`` (one line each, appended), for the latency figures.
"""

from __future__ import annotations

import os
import time

from imbot_app import on_message
from imbot_app.dispatch.context import MessageContext


@on_message(regex=r"^bench\b")
def noop(message: MessageContext) -> None:
    """Nothing: the cost measured is the worker's."""


@on_message(regex=r"^probe\b")
def probe(message: MessageContext) -> None:
    started = time.time()
    with open(os.environ["IMBOT_BENCH_LATENCY_FILE"], "a") as out:
        out.write(f"{message.event.pk} {started:.6f}\n")
