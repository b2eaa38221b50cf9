"""Benchmark of IMBOT_DISPATCH = "worker": how fast imbot_worker runs events, how soon after the
webhook's answer a handler starts, and what worker mode costs the webhook.

    .venv/bin/python bench/worker.py                       # SQLite, then PostgreSQL
    .venv/bin/python bench/worker.py --database postgres -n 20000
    .venv/bin/python bench/worker.py --only throughput     # or latency, http, sql

Each database leg runs in a throwaway database (bench/databases.py) and prints:

* **throughput**: ``-n`` message events (group chat, with their Message rows) are stored in one
  transaction while ``imbot_worker`` processes (1 on SQLite; 1, then 2 on PostgreSQL) wait;
  the clock runs from the commit until no event is left ``received``.  The handler is a no-op
  (bench/worker_handlers.py), so what is timed is imbot_app's own work.
* **latency**: from the webhook's answer (the endpoint called in this process; it commits and
  sends NOTIFY) to the handler's start in the worker, p50 and p99: idle (one probe every
  50 ms), then under load (a second process posting ``--load-rate`` events/s meanwhile).
* **http**: gunicorn (2 sync workers) serving the endpoint in worker mode, hammered by ``wrk``
  (unique message ids per request, so no request is a duplicate), beside the floor measured
  in the same run: a bare Django view on the same settings that parses the same form body and
  inserts one row (bench/worker_floor_urls.py).  No imbot_worker runs meanwhile: the webhook
  alone.  Then the same endpoint in inline mode (the no-op handler in the request), for
  comparison.
* **sql**: SQL statements per steady-state message at the endpoint (BEGIN/COMMIT apart).

DEBUG is off.  It prints figures; it is not a test.  Runs are bounded (a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import throwaway_database  # noqa: E402
from worker_http import http_leg  # noqa: E402

CHAT_ID = 9700
PG_NAME = "imbot_bench_worker"
PARTS = ("throughput", "latency", "http", "sql")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("-n", "--events", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--load-rate", type=float, default=100.0)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per URL")
    parser.add_argument("--only", choices=PARTS, action="append")
    parser.add_argument("--leg", help=argparse.SUPPRESS)
    parser.add_argument("--load-poster", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_poster:
        return load_poster(*args.load_poster)
    if args.leg:
        return leg(args)
    for database in ("sqlite", "postgres") if args.database == "both" else (args.database,):
        with throwaway_database(database, PG_NAME) as url:
            command = [sys.executable, __file__, "--leg", database, *sys.argv[1:]]
            subprocess.run(command, env={**os.environ, "DATABASE_URL": url}, check=True)  # noqa: S603


def setup_django(database: str) -> None:
    os.environ.update(
        DEBUG="False",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only"),
        IMBOT_SENDER="imbot_app.outbound.calls.PendingSender",
        IMBOT_DISPATCH="worker",
        IMBOT_LOG_LEVEL="WARNING",
        IMBOT_REGISTER_ON_INSTALL="False",
        IMBOT_HANDLER_MODULES="bench.worker_handlers",
        DJANGO_SETTINGS_MODULE="project.settings",
        PYTHONPATH=str(ROOT),
    )
    import django

    django.setup()


def leg(args: argparse.Namespace) -> None:
    database = args.leg
    setup_django(database)
    from django.core.management import call_command

    from imbot_app.testing import EventFactory

    call_command("migrate", verbosity=0)
    factory = EventFactory.installed()
    parts = args.only or PARTS
    print(f"\n=== {database} ===", flush=True)
    if "throughput" in parts:
        for workers in (1,) if database == "sqlite" else (1, 2):
            throughput(factory, args.events, workers)
    if "latency" in parts:
        latency(factory, args)
    if "sql" in parts:
        sql_per_message(factory)
    if "http" in parts:
        http_leg(factory, database, duration=args.duration)


# ------------------------------------------------------------------------------ workers


class Workers:
    """``imbot_worker`` subprocesses on the bench database, stopped with SIGTERM."""

    def __init__(self, count: int, folder: Path, *extra: str) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        for n in range(count):
            log = folder / f"worker-{n}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(  # noqa: S603
                        [sys.executable, "manage.py", "imbot_worker", "--idle-sleep", "0.05",
                         "--log-every", "3600", *extra],
                        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
        deadline = time.monotonic() + 60
        while not all("runner(s)" in p.read_text() for p in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise SystemExit("a worker did not start:\n" + self.logs[0].read_text())
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU the workers used so far (Linux /proc), all threads."""
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=60)


def store_events(factory: Any, count: int, prefix: str) -> None:
    """``count`` received message events with their Message rows, in one transaction."""
    from django.db import transaction
    from django.utils import timezone

    from imbot_app.dispatch.worker.queue import notify_workers
    from imbot_app.inbound.store import redact
    from imbot_app.models import Chat, Event, Message, Portal

    portal = Portal.objects.get(member_id=factory.member_id)
    chat, _ = Chat.objects.get_or_create(
        portal=portal, dialog_id=f"chat{CHAT_ID}", bot=None, defaults={"type": "C"}
    )
    base = Event.objects.count() * 10 + 1_000_000
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, count, 2000):
            numbers = range(base + start, base + min(start + 2000, count))
            events = Event.objects.bulk_create(
                Event(
                    portal=portal,
                    name="ONIMBOTMESSAGEADD",
                    payload=redact(factory.message(f"bench {n}", chat_id=CHAT_ID, message_id=n)),
                    dedup_key=f"{prefix}:{n}",
                    ts=now,
                )
                for n in numbers
            )
            Message.objects.bulk_create(
                Message(portal=portal, chat=chat, event=e, message_id=n, text=f"bench {n}")
                for n, e in zip(numbers, events, strict=True)
            )
        transaction.on_commit(notify_workers)


def throughput(factory: Any, count: int, workers: int) -> None:
    import tempfile

    from django.db.models import Count

    from imbot_app.models import Event, HandlerRun

    folder = Path(tempfile.mkdtemp(prefix="imbot-bench-worker-"))
    pool = Workers(workers, folder)
    try:
        before = HandlerRun.objects.count()
        store_events(factory, count, f"tp{workers}-{time.time()}")
        started = time.perf_counter()
        cpu_before = pool.cpu_seconds()
        waiting = Event.objects.filter(status=Event.Status.RECEIVED)
        while waiting.exists():
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        cpu = pool.cpu_seconds() - cpu_before
    finally:
        pool.stop()
    runs = HandlerRun.objects.count() - before
    shares = sorted(
        HandlerRun.objects.order_by().values("worker").annotate(n=Count("id")).values_list("n")
    )
    print(
        f"throughput, {workers} worker(s), no-op handler: {count / seconds:,.0f} events/s "
        f"({count} events in {seconds:.2f} s; {runs} handler runs; worker CPU "
        f"{cpu / count * 1000:.2f} ms per event, i.e. {count / max(cpu, 1e-9):,.0f} events per "
        f"CPU-second; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"handler runs per worker process, all rounds: {[n for (n,) in shares]})",
        flush=True,
    )


# ------------------------------------------------------------------------------ latency


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def latency(factory: Any, args: argparse.Namespace) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="imbot-bench-latency-"))
    record = folder / "started.txt"
    os.environ["IMBOT_BENCH_LATENCY_FILE"] = str(record)
    record.touch()
    pool = Workers(1, folder)
    try:
        print(f"latency, idle: {probe(factory, args.probes, record)}", flush=True)
        poster = subprocess.Popen(  # noqa: S603
            [sys.executable, __file__, "--load-poster", str(args.load_rate), "3600"],
            cwd=ROOT,
            env={
                **os.environ,
                "IMBOT_BENCH_MEMBER": factory.member_id,
                "IMBOT_BENCH_TOKEN": factory.application_token,
            },
        )
        try:
            time.sleep(2)  # the poster's start-up
            line = probe(factory, args.probes, record)
        finally:
            poster.terminate()
            poster.wait(timeout=30)
        print(f"latency, under ~{args.load_rate:g} events/s of load: {line}", flush=True)
    finally:
        pool.stop()


def probe(factory: Any, count: int, record: Path) -> str:
    """Post ``count`` probes 50 ms apart; the answer -> handler start delays."""
    from django.test import Client

    from imbot_app.testing import post_event

    client = Client()
    answered: dict[int, float] = {}
    for n in range(count):
        payload = factory.message(f"probe {n} {time.time()}", chat_id=CHAT_ID)
        response = post_event(client, payload)
        answered[response.json()["event_id"]] = time.time()
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    started: dict[int, float] = {}
    while len(started) < count and time.monotonic() < deadline:
        started = {
            int(a): float(b)
            for a, b in (line.split() for line in record.read_text().splitlines())
            if int(a) in answered
        }
        time.sleep(0.05)
    delays = [(started[i] - answered[i]) * 1000 for i in answered if i in started]
    if not delays:
        return "no probe ran"
    return (
        f"p50 {statistics.median(delays):.1f} ms, p99 {percentile(delays, 0.99):.1f} ms "
        f"(min {min(delays):.1f}, max {max(delays):.1f}; {len(delays)}/{count} probes)"
    )


def load_poster(rate: float, seconds: float) -> None:
    """Post ``rate`` events/s through the endpoint until killed (the latency bench's load)."""
    setup_django("")
    from django.test import Client

    from imbot_app.testing import EventFactory, post_event

    factory = EventFactory(
        member_id=os.environ["IMBOT_BENCH_MEMBER"],
        application_token=os.environ["IMBOT_BENCH_TOKEN"],
    )
    client = Client()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        post_event(client, factory.message(f"bench load {n}", chat_id=CHAT_ID))
        n += 1
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)


# ------------------------------------------------------------------------------ SQL


def sql_per_message(factory: Any) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from imbot_app.testing import post_event

    client = Client()
    post_event(client, factory.message("bench warm up", chat_id=CHAT_ID))
    sample = 20
    with CaptureQueriesContext(connection) as context:
        for n in range(sample):
            post_event(client, factory.message(f"bench sql {n}", chat_id=CHAT_ID))
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
    data = [q for q in context.captured_queries if not q["sql"].startswith(control)]
    per = len(data) / sample
    total = len(context.captured_queries) / sample
    print(
        f"SQL per steady-state message at the endpoint (worker mode): {per:.1f} statements "
        f"({total:.1f} with transaction control; goal <= 4: {'met' if per <= 4 else 'NOT met'})",
        flush=True,
    )
    cpu_per_request(factory)


def cpu_per_request(factory: Any, count: int = 300) -> None:
    """In-process CPU per request (Django's test client, no HTTP): a load-independent view of
    what the gunicorn figures compare."""
    from django.db import connection
    from django.test import Client, override_settings

    from imbot_app.testing import encode_event

    with connection.cursor() as cursor:
        serial = "SERIAL" if connection.vendor == "postgresql" else "INTEGER"
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS bench_floor (id {serial} PRIMARY KEY, payload TEXT)"
        )
    client = Client()
    form = "application/x-www-form-urlencoded"
    serial_no = iter(range(50_000_000, 60_000_000))

    def measure(path: str, mode: str) -> float:
        bodies = [
            encode_event(factory.message("bench cpu", chat_id=CHAT_ID, message_id=next(serial_no)))
            for _ in range(count)
        ]
        with override_settings(IMBOT_DISPATCH=mode, ROOT_URLCONF="bench.worker_floor_urls"):
            client.post(path, data=bodies[0], content_type=form)
            started = time.process_time()
            for body in bodies[1:]:
                assert client.post(path, data=body, content_type=form).status_code == 200
            return (time.process_time() - started) / (count - 1) * 1000

    figures = {
        "floor": measure("/bench/floor/", "worker"),
        "worker": measure("/imbot/events/", "worker"),
        "inline": measure("/imbot/events/", "inline"),
    }
    print(
        f"CPU per request in process (test client, no HTTP): endpoint in worker mode "
        f"{figures['worker']:.2f} ms, in inline mode (no-op handler) {figures['inline']:.2f} ms, "
        f"floor {figures['floor']:.2f} ms "
        f"(floor/worker {figures['floor'] / figures['worker']:.2f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
