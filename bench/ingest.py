"""Benchmark of the webhook hot path: ``POST /imbot/events/``, in-process, per database.

    .venv/bin/python bench/ingest.py                      # 5000 events, SQLite then PostgreSQL
    .venv/bin/python bench/ingest.py -n 1000 --database sqlite
    .venv/bin/python bench/ingest.py --database postgres --conn-max-age 60
    .venv/bin/python bench/ingest.py --database sqlite -n 500 --profile 40 --show-sql

Each database runs in a child process of its own (Django settings are configured once per
process): the parent re-invokes this script with ``--child`` and collects one result line.
The child

* points ``DATABASE_URL`` at a throwaway database (a temporary SQLite file, or a fresh
  PostgreSQL database ``imbot_bench`` on ``postgres://postgres@127.0.0.1:5432/``, dropped at
  the end) and applies the migrations there;
* stores one installed portal (``EventFactory.installed()``) and pre-builds every event as the
  form body Bitrix24 sends (building is not timed): mostly ONIMBOTMESSAGEADD in group and
  private chats spread over ``--chats`` chats and ``--users`` users, some ONIMCOMMANDADD, a few
  ONIMBOTJOINCHAT;
* posts ``--warmup`` untimed events, then all N through ``project.wsgi.application`` with a
  plain WSGI environ (no cookie, no CSRF token, as Bitrix24's queue server sends them),
  checking that every answer is ``200 {"status": "accepted", ...}``;
* counts SQL statements per request with ``connection.execute_wrapper`` (BEGIN/COMMIT left
  out: SQLite sends BEGIN through the cursor, PostgreSQL does not), overall and for the
  steady-state message path (portal, bot, chat and user already stored), and how many of them
  the endpoint's after-commit handler dispatch (``imbot_app.web.views.event_stored``) issues;
  one more known-chat private message is captured with ``CaptureQueriesContext`` as a
  cross-check (``--show-sql`` prints its statements).

What the app logs on stderr during a run (the example handlers' pending replies, say) is
collected by the parent and summarised, not echoed.  DEBUG is off in the children, as in
production (with DEBUG on Django also keeps every query in memory), unless ``--debug``.
This prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from databases import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "imbot_bench"
RESULT_PREFIX = "IMBOT-BENCH-RESULT "
DATABASES = ("sqlite", "postgres")
EVENTS_PATH = "/imbot/events/"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
WRITES = ("INSERT", "UPDATE", "DELETE")

# Share of each kind of event in the generated stream.
MIX = (
    ("group", 0.55),  # ONIMBOTMESSAGEADD in a group chat, the bot mentioned
    ("private", 0.30),  # ONIMBOTMESSAGEADD in a private dialog with the bot
    ("command", 0.12),  # ONIMCOMMANDADD, typed in a group or a private chat
    ("join", 0.03),  # ONIMBOTJOINCHAT: the bot added to a group chat, or a dialog opened
)
COMMANDS = ((103, "echo"), (105, "help"), (107, "weather"), (109, "remind"))
FIRST_NAMES = ("Anna", "Ivan", "Maria", "Pavel", "Olga", "Dmitry", "Elena", "John", "Светлана")
LAST_NAMES = ("Petrova", "Smirnov", "Ivanova", "Kuznetsov", "Smith", "Novikova", "Волков")
TEXTS = (
    "Hello, bot",
    "what's the status of ticket #{n}?",
    "Привет! Когда будет готов отчёт №{n}?",
    "ok",
    "please remind me about the call at 15:00",
    "Can you summarise the thread? Links: https://example.com/a?b={n}&c=d",
    "👍 thanks",
    "Добрый день, коллеги. Напоминаю про встречу в четверг в 11:00, повестка во вложении.",
    "deploy {n} done, all green",
    "a longer message " + "lorem ipsum dolor sit amet " * 12,
)


# ------------------------------------------------------------------------------ results


@dataclass
class Result:
    database: str
    server: str
    conn_max_age: int
    dispatch_mode: str
    sender: str
    sender_calls: int
    events: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms: float
    dispatch_ms: float | None
    queries_per_event: float
    queries_known_private: float
    queries_known_private_dispatch: float | None
    queries_known_group: float
    probe_queries: int
    autocommit_writes_known_private: float
    rss_before_mib: float
    peak_rss_mib: float
    kinds: dict[str, int]
    latency_by_fifth: list[float]


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


COLUMNS: tuple[tuple[str, Callable[[Result], str]], ...] = (
    ("database", lambda r: r.database),
    ("events", lambda r: str(r.events)),
    ("seconds", lambda r: _num(r.seconds, 1)),
    ("events/s", lambda r: _num(r.events / r.seconds if r.seconds else 0.0, 0)),
    ("mean ms", lambda r: _num(r.mean_ms)),
    ("p50 ms", lambda r: _num(r.p50_ms)),
    ("p99 ms", lambda r: _num(r.p99_ms)),
    ("cpu ms", lambda r: _num(r.cpu_ms)),
    ("dispatch ms", lambda r: _num(r.dispatch_ms)),
    ("q/event", lambda r: _num(r.queries_per_event)),
    ("q/known private", lambda r: _num(r.queries_known_private)),
    ("..in dispatch", lambda r: _num(r.queries_known_private_dispatch)),
    ("q/known group", lambda r: _num(r.queries_known_group)),
    ("peak RSS MiB", lambda r: _num(r.peak_rss_mib, 1)),
)
LEGEND = (
    "mean/p50/p99 ms: wall time of one request; cpu ms: this process's CPU time per request "
    "(the database server's is not in it);\n"
    "dispatch ms: mean time spent in the after-commit handler dispatch; q/...: SQL statements "
    "per request, BEGIN/COMMIT not counted;\n"
    "known private/group: ONIMBOTMESSAGEADD whose portal, bot, chat and user were already "
    "stored; ..in dispatch: of those, issued by the dispatch."
)


def format_table(results: list[Result]) -> str:
    rows = [[get(r) for _, get in COLUMNS] for r in results]
    titles = [title for title, _ in COLUMNS]
    widths = [max([len(titles[i])] + [len(row[i]) for row in rows]) for i in range(len(titles))]

    def line(cells: list[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        rest = [f"{cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [line(titles), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


# ------------------------------------------------------------------------------ databases


# ------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class Prepared:
    kind: str  # group | private | command | join
    body: bytes
    known: bool  # bot, chat and user were all stored by an earlier event


class EventStream:
    """The events of one portal as form bodies, remembering which chats and users were seen."""

    def __init__(self, base: Any, *, users: int, chats: int, seed: int) -> None:
        from imbot_app.testing import encode_event

        self._encode = encode_event
        self.rng = random.Random(seed)
        self.user_ids = [2001 + i for i in range(users)]
        names = {
            uid: f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
            for uid in self.user_ids
        }
        # About a third of the chats are private dialogs, with the people who write to the bot
        # directly; everyone reaches it in the group chats.
        dialogs = min(max(1, chats * 3 // 10), users)
        self.dm_users = self.rng.sample(self.user_ids, dialogs)
        self.dm_chat_id = {uid: 90001 + i for i, uid in enumerate(self.dm_users)}
        self.group_chats = [501 + i for i in range(max(1, chats - dialogs))]
        self.factories = {
            uid: replace(base, user_id=uid, user_name=names[uid]) for uid in self.user_ids
        }
        self.seen_chats: set[str] = set()
        self.seen_users: set[int] = set()
        self.bot_seen = False
        self.counter = 0

    def _text(self) -> str:
        self.counter += 1
        return self.rng.choice(TEXTS).format(n=self.counter)

    def _body(self, payload: dict[str, Any], dm_user: int | None) -> bytes:
        params = payload["data"]["PARAMS"]
        if dm_user is not None and "TO_CHAT_ID" in params:
            # A private dialog's chat id, the same for every message of that dialog.
            params["TO_CHAT_ID"] = str(self.dm_chat_id[dm_user])
        return self._encode(payload).encode("ascii")

    def next(self) -> Prepared:
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        private = kind == "private" or (kind in ("command", "join") and self.rng.random() < 0.4)
        if private:
            uid = self.rng.choice(self.dm_users)
            chat_id = None
            chat_key = f"dm{uid}"
        else:
            uid = self.rng.choice(self.user_ids)
            chat_id = self.rng.choice(self.group_chats)
            chat_key = f"chat{chat_id}"
        factory = self.factories[uid]
        if kind in ("group", "private"):
            payload = factory.message(self._text(), chat_id=chat_id)
        elif kind == "command":
            command_id, word = self.rng.choice(COMMANDS)
            params = self._text()[:40]
            payload = factory.command(word, params, command_id=command_id, chat_id=chat_id)
        else:
            payload = factory.join(chat_id=chat_id)
        known = self.bot_seen and chat_key in self.seen_chats and uid in self.seen_users
        self.bot_seen = True
        self.seen_chats.add(chat_key)
        self.seen_users.add(uid)
        return Prepared(kind, self._body(payload, uid if private else None), known)

    def known_private_message(self) -> Prepared:
        """A private message in a dialog already stored, from a user already stored."""
        uid = next(u for u in self.dm_users if f"dm{u}" in self.seen_chats)
        payload = self.factories[uid].message(self._text())
        return Prepared("private", self._body(payload, uid), True)


# ------------------------------------------------------------------------------ measuring


class QueryCounter:
    """A ``connection.execute_wrapper`` that counts statements, BEGIN/COMMIT left out.

    ``autocommit_writes`` counts the writes made outside any transaction: each is committed
    (and on PostgreSQL flushed to the WAL) on its own.
    """

    def __init__(self) -> None:
        self.count = 0
        self.autocommit_writes = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        head = sql.lstrip()[:8].upper()
        if not head.startswith(TRANSACTION_CONTROL):
            self.count += 1
            if head.startswith(WRITES) and not context["connection"].in_atomic_block:
                self.autocommit_writes += 1
        return execute(sql, params, many, context)


class DispatchMeter:
    """Wraps the endpoint's on-commit hook to time it and count its statements."""

    def __init__(self, hook: Callable[[Any, Any], Any], counter: QueryCounter) -> None:
        self.hook = hook
        self.counter = counter
        self.seconds = 0.0
        self.queries = 0
        self.log_marks: list[int] = []

    def reset(self) -> None:
        self.seconds = 0.0
        self.queries = 0

    def __call__(self, event: Any, parsed: Any = None) -> Any:
        from django.db import connection

        self.log_marks.append(len(connection.queries_log))
        before = self.counter.count
        start = time.perf_counter()
        try:
            return self.hook(event, parsed)
        finally:
            self.seconds += time.perf_counter() - start
            self.queries += self.counter.count - before
            self.log_marks.append(len(connection.queries_log))


class NullSender:
    """Stands in for ``IMBOT_SENDER``: the handlers' Bitrix24 calls are counted, not made."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, call: Any) -> None:
        self.calls += 1


def install_null_sender() -> NullSender | None:
    """Make ``IMBOT_SENDER`` a :class:`NullSender` (in this process only), if the app has it."""
    from django.conf import settings

    from imbot_app import conf

    if "IMBOT_SENDER" not in getattr(conf, "DEFAULTS", {}):
        return None
    sender = NullSender()
    settings.IMBOT_SENDER = sender
    return sender


def instrument_dispatch(counter: QueryCounter) -> DispatchMeter | None:
    """Put a :class:`DispatchMeter` around ``imbot_app.web.views.event_stored``, if there is one."""
    from imbot_app.web import views

    hook = getattr(views, "event_stored", None)
    if not callable(hook):
        return None
    meter = DispatchMeter(hook, counter)
    views.event_stored = meter  # type: ignore[attr-defined,unused-ignore]
    return meter


def post(application: Any, body: bytes) -> tuple[str, bytes]:
    """One POST through the WSGI application, as a WSGI server would make it."""
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": EVENTS_PATH,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "Bitrix24 Webhook Engine",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status: list[str] = []

    def start_response(status_line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(status_line)
        return lambda data: None

    result = application(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        result.close()  # sends request_finished (closes the connection at CONN_MAX_AGE=0)
    return status[0], content


def check(status: str, content: bytes, what: str) -> None:
    if not status.startswith("200 "):
        raise SystemExit(f"{what}: HTTP {status}: {content[:500]!r}")
    answer = json.loads(content)
    if answer.get("status") != "accepted":
        raise SystemExit(f"{what}: expected status 'accepted', got {answer!r}")


def say(database: str, message: str) -> None:
    """A progress line of the child, on stdout (stderr is the app's log)."""
    print(f"[{database}] {message}", flush=True)


# ------------------------------------------------------------------------------ child


def run_child(args: argparse.Namespace) -> Result:
    with throwaway_database(
        args.database, PG_DATABASE, query=f"?conn_max_age={args.conn_max_age}"
    ) as url:
        os.environ["DATABASE_URL"] = url
        os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
        if not args.debug:
            os.environ["DEBUG"] = "False"
            os.environ.setdefault("SECRET_KEY", "imbot-bench-not-secret-" + "x" * 32)
        try:
            return measure(args)
        finally:
            from django.db import connections

            connections.close_all()


def measure(args: argparse.Namespace) -> Result:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imbot_app.testing import EventFactory

    db = args.database
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    say(
        db, f"migrated a fresh {connection.vendor} database in {time.perf_counter() - started:.1f}s"
    )

    stream = EventStream(
        EventFactory.installed(), users=args.users, chats=args.chats, seed=args.seed
    )
    started = time.perf_counter()
    warmup = [stream.next() for _ in range(args.warmup)]
    events = [stream.next() for _ in range(args.n)]
    probe = stream.known_private_message()
    kinds = Counter(e.kind for e in events)
    known = Counter(e.kind for e in events if e.known)
    say(
        db,
        f"built {len(warmup)} + {len(events)} events in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{k} {v} ({known[k]} known)" for k, v in sorted(kinds.items())),
    )

    from project.wsgi import application

    sender = install_null_sender() if args.sender == "null" else None
    sender_name = type(sender).__name__ if sender else str(getattr(settings, "IMBOT_SENDER", "-"))
    counter = QueryCounter()
    meter = instrument_dispatch(counter)
    if meter is None:
        say(db, "imbot_app.web.views.event_stored not found: dispatch is not measured apart")
    for i, prepared in enumerate(warmup):
        check(*post(application, prepared.body), f"warm-up event {i}")

    rss_before_mib = current_rss_mib()
    calls_before = sender.calls if sender is not None else 0
    latencies: list[float] = []
    queries: list[int] = []
    autocommit_writes: list[int] = []
    dispatch_queries: list[int] = []
    dispatch_seconds = 0.0
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    perf = time.perf_counter
    with connection.execute_wrapper(counter):
        if profiler is not None:
            profiler.enable()
        cpu_begin = time.process_time()
        begin = perf()
        for i, prepared in enumerate(events):
            if meter is not None:
                meter.reset()
            before = counter.count
            writes_before = counter.autocommit_writes
            t0 = perf()
            status, content = post(application, prepared.body)
            latencies.append(perf() - t0)
            queries.append(counter.count - before)
            autocommit_writes.append(counter.autocommit_writes - writes_before)
            if meter is not None:
                dispatch_queries.append(meter.queries)
                dispatch_seconds += meter.seconds
            check(status, content, f"event {i} ({prepared.kind})")
        seconds = perf() - begin
        cpu_seconds = time.process_time() - cpu_begin
        if profiler is not None:
            profiler.disable()
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    calls_swallowed = sender.calls - calls_before if sender is not None else 0

    # The steady-state message path once more, its SQL captured by Django's own helper.
    connection.queries_log.clear()  # full with DEBUG on; CaptureQueriesContext indexes into it
    if meter is not None:
        meter.log_marks.clear()
    with CaptureQueriesContext(connection) as captured:
        check(*post(application, probe.body), "probe event")
    statements = [
        q["sql"] for q in captured.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)
    ]
    if args.show_sql:
        marks = set(meter.log_marks) if meter is not None else set()
        say(db, f"SQL of one known-chat private message ({len(statements)} statements):")
        for index, query in enumerate(captured.captured_queries):
            if index in marks:
                print("    --- after-commit dispatch ---")
            print(f"    {query['sql'][: args.sql_width]}")
    if profiler is not None:
        import pstats

        for order in ("tottime", "cumulative"):
            print(f"--- profile of the timed run ({db}), sorted by {order} ---", flush=True)
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.strip_dirs().sort_stats(order).print_stats(args.profile)

    def mean_of(values: list[int], kind: str) -> float:
        picked = [v for v, e in zip(values, events, strict=True) if e.known and e.kind == kind]
        return statistics.fmean(picked) if picked else float("nan")

    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    fifth = max(1, len(latencies) // 5)
    return Result(
        database="postgresql" if connection.vendor == "postgresql" else connection.vendor,
        server=server_version(),
        conn_max_age=int(connection.settings_dict.get("CONN_MAX_AGE") or 0),
        dispatch_mode=str(getattr(settings, "IMBOT_DISPATCH", "n/a")),
        sender=sender_name,
        sender_calls=calls_swallowed,
        events=len(events),
        seconds=seconds,
        mean_ms=statistics.fmean(latencies) * 1000,
        p50_ms=cut[49] * 1000,
        p99_ms=cut[98] * 1000,
        max_ms=max(latencies) * 1000,
        cpu_ms=cpu_seconds / len(events) * 1000,
        dispatch_ms=dispatch_seconds / len(events) * 1000 if meter is not None else None,
        queries_per_event=statistics.fmean(queries),
        queries_known_private=mean_of(queries, "private"),
        queries_known_private_dispatch=mean_of(dispatch_queries, "private")
        if meter is not None
        else None,
        queries_known_group=mean_of(queries, "group"),
        probe_queries=len(statements),
        autocommit_writes_known_private=mean_of(autocommit_writes, "private"),
        rss_before_mib=rss_before_mib,
        peak_rss_mib=peak_rss_mib,
        kinds=dict(sorted(kinds.items())),
        latency_by_fifth=[
            statistics.fmean(latencies[i : i + fifth]) * 1000 for i in range(0, fifth * 5, fifth)
        ],
    )


def current_rss_mib() -> float:
    """This process's resident set now (Linux), or NaN."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
            return f"PostgreSQL {row[0].split()[0] if row else '?'}"
        cursor.execute("SELECT sqlite_version()")
        row = cursor.fetchone()
        return f"SQLite {row[0] if row else '?'}"


# ------------------------------------------------------------------------------ parent


def run_parent(args: argparse.Namespace) -> int:
    chosen = DATABASES if args.database == "both" else (args.database,)
    load = os.getloadavg()[0]
    results: list[Result] = []
    notes: list[str] = []
    failed: list[str] = []
    started = time.perf_counter()
    for database in chosen:
        command = [sys.executable, str(Path(__file__).resolve()), *child_args(args, database)]
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as app_log:
            completed = subprocess.run(  # noqa: S603 (this script, with our own arguments)
                command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=app_log,
                text=True,
                check=False,
            )
            app_log.seek(0)
            log_lines = app_log.read().splitlines()
        output = completed.stdout.splitlines()
        for line in output:
            if not line.startswith(RESULT_PREFIX):
                print(line, file=sys.stderr)
        found = [line.removeprefix(RESULT_PREFIX) for line in output if RESULT_PREFIX in line]
        if completed.returncode != 0 or not found:
            failed.append(f"{database}: exit status {completed.returncode}")
            print("\n".join(log_lines[-40:]), file=sys.stderr)
            continue
        results.append(Result(**json.loads(found[-1])))
        if log_lines:
            notes.append(
                f"{database}: the app wrote {len(log_lines)} lines on stderr, e.g. "
                f"{log_lines[0][:160]}"
            )
    if results:
        print_report(args, results, load, notes, time.perf_counter() - started)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


def child_args(args: argparse.Namespace, database: str) -> list[str]:
    out = ["--child", "--database", database, "-n", str(args.n)]
    for option in ("warmup", "users", "chats", "seed", "conn_max_age", "profile", "sql_width"):
        out += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.show_sql:
        out.append("--show-sql")
    if args.debug:
        out.append("--debug")
    out += ["--sender", args.sender]
    return out


def git_state() -> str:
    def git(*argv: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603
                ["git", "-C", str(ROOT), *argv],  # noqa: S607
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError:
            return ""
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "?"
    changed = [
        line[3:] for line in git("status", "--porcelain", "--", "imbot_app", "project").splitlines()
    ]
    if not changed:
        return f"code at {head}"
    return f"code at {head} + uncommitted changes in {', '.join(changed)}"


def print_report(
    args: argparse.Namespace, results: list[Result], load: float, notes: list[str], wall: float
) -> None:
    import django

    first = results[0]
    print(
        f"POST {EVENTS_PATH} in-process through project.wsgi.application; {git_state()}\n"
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start; DEBUG={args.debug}, "
        f"IMBOT_DISPATCH={first.dispatch_mode}, IMBOT_SENDER={first.sender} "
        f"({first.sender_calls} Bitrix24 calls from handlers in the timed run "
        f"{'swallowed' if first.sender == 'NullSender' else 'made'})\n"
        f"{first.events} events after {args.warmup} warm-up, 1 portal, {args.users} users, "
        f"{args.chats} chats: " + ", ".join(f"{k} {v}" for k, v in first.kinds.items())
    )
    for r in results:
        fifths = " ".join(f"{ms:.1f}" for ms in r.latency_by_fifth)
        print(
            f"{r.database}: {r.server}, CONN_MAX_AGE={r.conn_max_age}; probe message "
            f"{r.probe_queries} statements; known private message: "
            f"{_num(r.autocommit_writes_known_private)} writes outside a transaction; "
            f"max {r.max_ms:.1f} ms; mean ms by fifth: {fifths}; "
            f"RSS {_num(r.rss_before_mib, 1)} MiB before the timed run"
        )
    for note in notes:
        print(note)
    if args.profile:
        print("(profiled run: the timings include cProfile's overhead)")
    print()
    print(format_table(results))
    print()
    print(LEGEND)
    print(f"(whole run {wall:.0f}s)")


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure POST /imbot/events/ in-process on SQLite and/or PostgreSQL."
    )
    parser.add_argument("-n", type=int, default=5000, help="events to time (default 5000)")
    parser.add_argument("--database", choices=[*DATABASES, "both"], default="both")
    parser.add_argument("--warmup", type=int, default=50, help="untimed events first (50)")
    parser.add_argument("--users", type=int, default=200, help="users on the portal (200)")
    parser.add_argument("--chats", type=int, default=50, help="chats, ~30%% private (50)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=600,
        help="CONN_MAX_AGE (default 600, the project's; 0 opens a connection per request)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="LINES", help="cProfile the timed run"
    )
    parser.add_argument("--show-sql", action="store_true", help="print one message's SQL")
    parser.add_argument("--sql-width", type=int, default=160, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="keep the project's DEBUG=True")
    parser.add_argument(
        "--sender",
        choices=["null", "configured"],
        default="null",
        help="null (default): handlers' Bitrix24 calls are counted, not made; configured: "
        "the project's IMBOT_SENDER (calls the factory portal's example.bitrix24.com)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("-n must be at least 2")
    if args.child and args.database == "both":
        parser.error("--child runs one database")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.child:
        return run_parent(args)
    result = run_child(args)
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
