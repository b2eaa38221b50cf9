"""``imbot_simulate --serve``: this project's development server, set up to trust the fake.

The server gets a settings module of its own, written to a temporary folder: the project's
settings (``from <DJANGO_SETTINGS_MODULE> import *``) plus the fake as the only OAuth server,
its client id and secret, ``IMBOT_PUBLIC_URL`` on the served port, replies sent to Bitrix24
and inline dispatch.  So a project is simulated as it is, whether or not its settings read
those values from the environment, and nothing of the simulation leaks into them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import CommandError

from imbot_app.testing import FakeBitrix24

START_TIMEOUT = 30.0
SETTINGS_MODULE = "imbot_simulate_settings"


def port_in_use_message(port: int, what: str, option: str) -> str:
    """The one line a busy port gets (instead of an OSError traceback)."""
    return (
        f"port {port} on 127.0.0.1 is already in use, so {what} cannot listen there: "
        f"stop what uses it or pick another port with {option} (make demo: DEMO_PORT / "
        "DEMO_FAKE_PORT)"
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_source(fake: FakeBitrix24, port: int) -> str:
    base = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
    return "\n".join(
        [
            f"from {base} import *  # noqa: F403",
            "",
            f"IMBOT_OAUTH_SERVERS = [{fake.rest_url!r}]",
            "IMBOT_ENDPOINT_HOSTS = ['127.0.0.1']",
            f"IMBOT_CLIENT_ID = {fake.client_id!r}",
            f"IMBOT_CLIENT_SECRET = {fake.client_secret!r}",
            f"IMBOT_PUBLIC_URL = 'http://127.0.0.1:{port}'",
            "IMBOT_SENDER = 'imbot_app.outbound.sender.RestSender'",
            "IMBOT_DISPATCH = 'inline'",
            "IMBOT_WEBHOOK_URL = ''",
            "IMBOT_WEBHOOK_CLIENT_ID = ''",
            "ALLOWED_HOSTS = [*globals().get('ALLOWED_HOSTS', []), '127.0.0.1']",
            "",
        ]
    )


def _import_roots() -> list[str]:
    """Folders the project's settings module is imported from, for the server's PYTHONPATH."""
    base = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
    package = import_module(base.split(".")[0])
    where = getattr(package, "__file__", None) or next(iter(package.__path__), "")
    root = Path(where).resolve().parent
    if base.count(".") or Path(where).name == "__init__.py":
        root = root.parent
    return [str(root), os.getcwd()]


@contextmanager
def served_project(fake: FakeBitrix24, port: int) -> Iterator[None]:
    """``runserver`` on ``port`` with the simulation's settings, stopped at the end."""
    if not port_is_free(port):
        raise CommandError(port_in_use_message(port, "the bot's server", "--serve"))
    with tempfile.TemporaryDirectory(prefix="imbot-simulate-") as folder:
        Path(folder, f"{SETTINGS_MODULE}.py").write_text(settings_source(fake, port))
        path = os.pathsep.join([folder, *_import_roots(), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE, "PYTHONPATH": path}
        log_path = Path(folder, "server.log")
        with log_path.open("wb") as log:
            server = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_for(server, port, log_path)
                yield
            finally:
                server.terminate()
                server.wait(timeout=10)


def _wait_for(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/imbot/events/", timeout=1)
            return
        except requests.RequestException:
            if server.poll() is not None or time.monotonic() > deadline:
                raise CommandError(
                    f"the bot's server on 127.0.0.1:{port} did not start: {_last_line(log_path)}"
                ) from None
            time.sleep(0.2)


def _last_line(log_path: Path) -> str:
    """The server's last words (an exception's last line names the cause)."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "it exited without a word"
