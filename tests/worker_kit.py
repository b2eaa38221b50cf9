"""Real ``manage.py imbot_worker`` subprocesses for the tests, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 45.0
EVENT_TIMEOUT = 60.0


def database_url(*, short_locks: bool = False) -> str:
    """The test database as a DATABASE_URL another process can open.

    ``short_locks``: a lock held longer than a second is an error, not a wait (the Celery
    tests want a locked database to be an error their task retries).
    """
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.skip("the SQLite test database is in memory; no other process can open it")
        return f"sqlite:///{Path(name).resolve()}" + ("?timeout=1" if short_locks else "")
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    url = f"postgres://{credentials}{host}:{port}/{quote(str(db['NAME']), safe='')}"
    return url + ("?options=-c%20lock_timeout%3D1000" if short_locks else "")


class ChildProcess:
    """A subprocess a test started: SIGKILL it, or stop it politely and SIGKILL if it lingers."""

    process: subprocess.Popen[bytes] | None = None
    stop_timeout = 15.0

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class WorkerProcess(ChildProcess):
    """One ``python manage.py <command> ...`` subprocess with its own log file."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, *args: str, command: str = "imbot_worker"
    ) -> None:
        self.name = f"{command}-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{self.name}.log"
        self.env = env
        self.args = [sys.executable, "manage.py", command, *args]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str | None = "runner(s)") -> WorkerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if ready is not None:
            self.wait_for_log(ready, READY_TIMEOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = EVENT_TIMEOUT) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        pytest.fail(f"no {text!r} from {self.name} after {timeout}s:\n{self.log()[-4000:]}")

    def wait(self, timeout: float = EVENT_TIMEOUT) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not exit:\n{self.log()[-4000:]}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)


def wait_for(check: Callable[[], bool], what: str, *logs: WorkerProcess) -> None:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    detail = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in logs)
    pytest.fail(f"timed out waiting for {what}\n{detail}")
