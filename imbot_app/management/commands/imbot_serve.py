"""``manage.py imbot_serve [ADDR:PORT]``: the development server and one imbot_worker, together.

What ``make run`` starts.  Both are this project's own ``manage.py`` commands, run as child
processes with the same settings: ``runserver`` (which answers Bitrix24) and ``imbot_worker``
(which runs the handlers, ``IMBOT_DISPATCH = "worker"``).  Ctrl-C (or SIGTERM) stops both;
if either stops by itself, the other is stopped too and the exit status is the first one's.
In production run them as two services instead (docs/how-to/deploy.md).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

STOP_TIMEOUT = 15.0


class Command(BaseCommand):
    help = "Run the development server and an imbot_worker together (Ctrl-C stops both)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--worker-args", default="", help='extra imbot_worker options, e.g. "--concurrency 4"'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        addrport = str(options["addrport"])
        if len(addrport) > 100 or any(c.isspace() for c in addrport):
            raise CommandError("addrport must look like 127.0.0.1:8000")
        manage = [sys.executable, str(Path(sys.argv[0]).resolve())]
        children = {
            "web": subprocess.Popen([*manage, "runserver", addrport]),  # noqa: S603
            "worker": subprocess.Popen(  # noqa: S603
                [*manage, "imbot_worker", *str(options["worker_args"]).split()]
            ),
        }
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        status = 0
        try:
            while not stopping:
                exited = [(n, p.returncode) for n, p in children.items() if p.poll() is not None]
                if exited:
                    name, status = exited[0]
                    self.stderr.write(f"{name} exited with {status}; stopping the other")
                    break
                time.sleep(0.2)
        finally:
            for process in children.values():
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for process in children.values():
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if status:
            raise CommandError(f"stopped: a child exited with {status}")
