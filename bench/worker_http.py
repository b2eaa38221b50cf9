"""bench/worker.py's webhook leg: gunicorn (2 sync workers) + wrk, worker mode vs the floor.

The floor is ``POST /bench/floor/`` (bench/worker_floor.py) on the same settings: Django parses
the same form body and inserts one row.  wrk posts the endpoint with a unique message id per
request (a Lua script rewrites one placeholder), so every request stores a new event.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
MARK = 987654321  # the message id in the template body, replaced per request
CONNECTIONS = 16
THREADS = 2

LUA = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  template = io.open("{body}"):read("*a")
  offset = tonumber(args[1])
end
function request()
  counter = counter + 1
  local body = template:gsub("{mark}", tostring(offset + id * 1000000 + counter))
  return wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded"}}, body)
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_leg(factory: Any, database: str, *, duration: int) -> None:
    from django.db import connection

    from imbot_app.testing import encode_event

    wrk = shutil.which("wrk")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if wrk is None or not gunicorn.exists():
        print("http: skipped (wrk or gunicorn missing; pip install -e '.[dev]')")
        return
    with connection.cursor() as cursor:
        serial = "SERIAL" if connection.vendor == "postgresql" else "INTEGER"
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS bench_floor (id {serial} PRIMARY KEY, payload TEXT)"
        )
    connection.close()  # gunicorn's processes open their own
    folder = Path(tempfile.mkdtemp(prefix="imbot-bench-http-"))
    body = encode_event(factory.message("bench http", chat_id=9700, message_id=MARK))
    body_path = folder / "body.txt"
    body_path.write_text(body)
    script = folder / "unique.lua"
    script.write_text(LUA.format(body=body_path, mark=MARK))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    from imbot_app.models import Event

    rates: dict[str, list[tuple[float, str, int, int]]] = {"floor": [], "worker": [], "inline": []}
    events_before = Event.objects.count()
    with serve(folder, "worker") as worker_base, serve(folder, "inline") as inline_base:
        urls = {
            "floor": f"{worker_base}/bench/floor/",
            "worker": f"{worker_base}/imbot/events/",
            "inline": f"{inline_base}/imbot/events/",
        }
        for url in urls.values():  # warm up: connections, the bot-id cache
            answer = requests.post(url, data=body, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
        for _ in range(2):  # interleaved, so a change in the machine's load hits all three
            for name, url in urls.items():
                rates[name].append(run_wrk(wrk, url, script, duration))

    def mean(name: str) -> float:
        return sum(r[0] for r in rates[name]) / len(rates[name])

    def runs(name: str) -> str:
        return ", ".join(f"{r[0]:,.0f} (p50 {r[1]}, non-2xx {r[2]})" for r in rates[name])

    floor, worker, inline = mean("floor"), mean("worker"), mean("inline")
    posted = sum(r[3] for name in ("worker", "inline") for r in rates[name]) + 1  # warm-up
    stored = Event.objects.count() - events_before
    # wrk does not count the requests still in flight when it stops: stored may be higher.
    check = (
        "none was a duplicate"
        if stored >= posted
        else f"WARNING: {posted - stored} were not stored as new events"
    )
    print(
        f"webhook through gunicorn -w 2, wrk -t{THREADS} -c{CONNECTIONS} {duration}s x2 "
        f"({database}): worker mode {worker:,.0f} req/s [{runs('worker')}]; floor "
        f"{floor:,.0f} req/s [{runs('floor')}]; ratio {worker / floor:.2f}x (goal >= 0.8x); "
        f"inline mode with the no-op handler {inline:,.0f} req/s [{runs('inline')}], "
        f"ratio {inline / floor:.2f}x; {stored} events stored for {posted} requests ({check})",
        flush=True,
    )


@contextmanager
def serve(folder: Path, mode: str) -> Iterator[str]:
    """gunicorn with 2 sync workers on the floor's settings, ``IMBOT_DISPATCH=mode``."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.worker_floor", "IMBOT_DISPATCH": mode}
    server = subprocess.Popen(  # noqa: S603
        [str(gunicorn), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "project.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=(folder / f"gunicorn-{mode}.log").open("wb"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/imbot/events/", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


_runs = iter(range(1000))


def run_wrk(wrk: str, url: str, script: Path, duration: int) -> tuple[float, str, int, int]:
    """Requests/s, the p50 latency, the count of non-2xx/3xx answers, the requests made.

    Each run numbers its messages from its own offset, so no request of any run repeats a
    message id of another (a repeat would be answered as a cheaper duplicate).
    """
    offset = 1_000_000_000 + next(_runs) * 10_000_000
    out = subprocess.run(  # noqa: S603
        [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s",
         str(script), url, "--", str(offset)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"\n\s+50%\s+([\d.]+\w+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    made = re.search(r"(\d+) requests in", out)
    return (
        rate,
        p50.group(1) if p50 else "?",
        int(bad.group(1)) if bad else 0,
        int(made.group(1)) if made else 0,
    )
