"""How long Bitrix24 waits for the webhook's answer when a handler is slow: inline vs Celery.

    .venv/bin/python bench/dispatch.py              # 20 requests per mode, about a minute
    .venv/bin/python bench/dispatch.py -n 50
    .venv/bin/python bench/dispatch.py --postgres   # a throwaway database on 127.0.0.1:5432

Four modes, each ``-n`` events posted one after the other through the endpoint (Django's test
client, in process, so no HTTP server is measured), timing each answer:

* ``inline``, no handler;        * ``inline``, a handler that sleeps 1 s;
* ``celery``, no handler;        * ``celery``, the same 1 s handler.

Inline, the handler runs in the request after the commit, so it shows in the answer.  With
Celery the request only stores the event and sends a task with its id to Redis; a real
``celery -A project worker`` (prefork, ``--concurrency``) runs the handler, and the bench waits
until the worker has processed every event, to show the work was really done.

A throwaway SQLite file holds the database (WAL, as project/settings.py configures it), shared
with the worker, or with ``--postgres`` a throwaway PostgreSQL database.  The broker is
``CELERY_BROKER_URL`` (Redis on 127.0.0.1 by default) with a queue of this run's own.  While
the worker processes events it competes with the webhook for CPU (and, on SQLite, for the one
write lock), which shows in the Celery "no handler" row on a small machine.  Messages go to
a group chat so the example project's handler (which answers private messages through
Bitrix24) stays out of the way.  This prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 1.0
SLOW_PATTERN = r"^slow\b"
CHAT_ID = 9100
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"


def slow_handler(message: Any) -> None:
    """The handler under test: a second of work (a slow API, a report, a model call)."""
    time.sleep(SLOW_SECONDS)


if os.environ.get("IMBOT_BENCH_WORKER") == "1":
    # Imported by the Celery worker through IMBOT_HANDLER_MODULES=bench.dispatch.
    from imbot_app import on_message

    on_message(regex=SLOW_PATTERN)(slow_handler)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (with 20 samples, p99 is the slowest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=20, help="events per mode")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the worker log")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        nargs="?",
        const=POSTGRES_SERVER,
        help=f"use a throwaway database on this PostgreSQL server (default {POSTGRES_SERVER})",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="imbot-bench-dispatch-"))
    if args.postgres:
        database_name = f"imbot_bench_dispatch_{uuid.uuid4().hex[:8]}"
        _postgres(args.postgres, f'CREATE DATABASE "{database_name}"')
        os.environ["DATABASE_URL"] = f"{args.postgres.rstrip('/')}/{database_name}"
        engine = "PostgreSQL"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
        engine = "SQLite"
    try:
        return _run(args, folder, engine)
    finally:
        if args.postgres:
            from django.db import connections

            connections.close_all()
            _postgres(args.postgres, f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def _postgres(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(statement.encode())


def _run(args: argparse.Namespace, folder: Path, engine: str) -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ.setdefault("DEBUG", "False")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("IMBOT_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings

    from imbot_app.dispatch.routing import router
    from imbot_app.models import Event
    from imbot_app.testing import EventFactory, post_event

    call_command("migrate", verbosity=0)
    factory = EventFactory.installed()
    client = Client()
    queue = f"imbot-bench-{uuid.uuid4().hex[:12]}"

    def post_many(text: str) -> tuple[list[float], list[int]]:
        """Post ``-n`` events, after one untimed warm-up (first broker connection, caches)."""
        assert post_event(client, factory.message(text, chat_id=CHAT_ID)).status_code == 200
        latencies, ids = [], []
        for _ in range(args.requests):
            payload = factory.message(text, chat_id=CHAT_ID)
            started = time.perf_counter()
            response = post_event(client, payload)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
            ids.append(response.json()["event_id"])
        return latencies, ids

    results: list[tuple[str, str, list[float], str]] = []
    with router.isolated():  # only the bench's own handler, never the example bot
        for label, with_handler in (("no handler", False), (f"{SLOW_SECONDS:g} s handler", True)):
            if with_handler:
                router.on_message(regex=SLOW_PATTERN)(slow_handler)
            latencies, ids = post_many("slow work" if with_handler else "plain")
            done = Event.objects.filter(pk__in=ids, status=Event.Status.PROCESSED).count()
            results.append(("inline", label, latencies, f"{done}/{len(ids)} processed in-request"))

    worker_env = {
        **os.environ,
        "IMBOT_HANDLER_MODULES": "bench.dispatch",
        "IMBOT_BENCH_WORKER": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = folder / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                f"--concurrency={args.concurrency}",
                "--prefetch-multiplier=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text(errors="replace"), file=sys.stderr)
                raise SystemExit("the Celery worker did not start")
            time.sleep(0.1)
        with (
            override_settings(IMBOT_DISPATCH="celery", IMBOT_CELERY_QUEUE=queue),
            router.isolated(),
        ):
            for label, text in (("no handler", "plain"), (f"{SLOW_SECONDS:g} s handler", "slow")):
                latencies, ids = post_many(text)
                answered = time.monotonic()
                pending = Event.objects.filter(pk__in=ids).exclude(status=Event.Status.PROCESSED)
                while pending.exists() and time.monotonic() - answered < 120:
                    time.sleep(0.1)
                done = len(ids) - pending.count()
                drained = time.monotonic() - answered
                note = f"{done}/{len(ids)} done by the worker {drained:.1f} s after the answers"
                results.append(("celery", label, latencies, note))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)

    print(f"webhook answer latency, {args.requests} ONIMBOTMESSAGEADD per mode ({engine})")
    print(f"{'mode':<8} {'handler':<14} {'median ms':>10} {'p99 ms':>10}  notes")
    for mode, label, latencies, note in results:
        print(
            f"{mode:<8} {label:<14} {statistics.median(latencies):>10.1f} "
            f"{percentile(latencies, 0.99):>10.1f}  {note}"
        )
    print(f"(Celery worker: prefork, concurrency {args.concurrency})")
    if args.keep:
        print(f"(worker log kept in {folder})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
