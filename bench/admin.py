"""Benchmark of the admin pages with 100,000 events, messages and handler runs.

    .venv/bin/python bench/admin.py                      # SQLite
    .venv/bin/python bench/admin.py --database postgres
    .venv/bin/python bench/admin.py --rows 20000         # quicker

In a throwaway database (a temporary SQLite file, or a fresh PostgreSQL database
``imbot_bench_admin``, dropped at the end) it stores, with ``bulk_create``: a few portals,
their bots, commands, 500 chats, 2,000 people, ``--rows`` events (received over the last 30
days, one in ten failed), as many messages (one chat holds 5,000 of them) and handler runs
(the failed ones with a traceback), and command invocations.  Then it logs a superuser in and
requests every list and page of the admin (lists also filtered, searched and on a late page)
through Django's test client, printing for each the median time of five requests and the
number of SQL queries.  It prints figures; it is not a test (tests/test_admin_queries.py
asserts the query counts).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from databases import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "imbot_bench_admin"
BATCH = 5000
REPEAT = 5
PORTALS = 5
CHATS = 500
PEOPLE = 2000
BIG_CHAT_MESSAGES = 5000
SLOW_MS = 200.0
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/project/imbot_handlers.py", line 42, in weather\n'
    "    forecast = client.get(city)\n"
    "ConnectionError: timed out\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with throwaway_database(args.database, PG_DATABASE) as url:
        os.environ["DATABASE_URL"] = url
        os.environ["DEBUG"] = "False"
        os.environ.setdefault("SECRET_KEY", "bench-only")
        os.environ["IMBOT_LOG_LEVEL"] = "WARNING"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        ids = store(args.rows)
        print(
            f"stored {args.rows:,} events, messages and handler runs in "
            f"{time.perf_counter() - started:.0f} s"
        )
        measure(ids)
        from django.db import connections

        connections.close_all()


# ------------------------------------------------------------------------------ storing


def store(rows: int) -> dict[str, int]:
    """Bulk-create the tables; returns the ids the measured pages need."""
    from django.utils import timezone

    from imbot_app.models import (
        Bot,
        Chat,
        ChatUser,
        Command,
        CommandInvocation,
        Credential,
        Event,
        HandlerRun,
        Message,
        Portal,
    )

    rng = random.Random(6)
    now = timezone.now()
    portals = Portal.objects.bulk_create(
        Portal(
            member_id=f"member{n:028d}",
            domain=f"portal{n}.bitrix24.com",
            application_token=f"app-token-{n:030d}",
        )
        for n in range(PORTALS)
    )
    bots = Bot.objects.bulk_create(
        Bot(portal=portal, bot_id=1000 + n, code=f"bot{n}") for n, portal in enumerate(portals)
    )
    commands = Command.objects.bulk_create(
        Command(portal=bot.portal, bot=bot, command_id=100 + k, command=word)
        for bot in bots
        for k, word in enumerate(("echo", "help", "weather"))
    )
    people = ChatUser.objects.bulk_create(
        ChatUser(portal=portals[n % PORTALS], user_id=5000 + n, name=f"Person {n}")
        for n in range(PEOPLE)
    )
    Credential.objects.bulk_create(
        Credential(
            portal=person.portal,
            user_id=person.user_id,
            access_token=f"access-{n:040d}",
            refresh_token=f"refresh-{n:040d}",
            expires_at=now + timedelta(hours=1),
        )
        for n, person in enumerate(people)
    )
    chats = Chat.objects.bulk_create(
        Chat(
            portal=portals[n % PORTALS],
            dialog_id=f"chat{n}",
            chat_id=n,
            type="C",
            title=f"Chat {n}",
        )
        for n in range(CHATS)
    )
    big_chat = chats[0]
    payload = {
        "event": "ONIMBOTMESSAGEADD",
        "data": {"PARAMS": {"MESSAGE": "x" * 200}},
        "auth": {"access_token": "[redacted]", "domain": "portal.bitrix24.com"},
    }
    failed_event = 0
    for start in range(0, rows, BATCH):
        numbers = range(start, min(start + BATCH, rows))
        events = Event.objects.bulk_create(
            Event(
                portal=portals[n % PORTALS],
                name="ONIMBOTMESSAGEADD" if n % 10 else "ONIMCOMMANDADD",
                payload=payload,
                dedup_key=f"d{n}",
                status="failed" if n % 10 == 3 else "processed",
                error="weather: ConnectionError" if n % 10 == 3 else "",
            )
            for n in numbers
        )
        for n, event in zip(numbers, events, strict=True):
            # Spread over 30 days, the newest last.
            event.received_at = now - timedelta(seconds=(rows - n) * 30 * 86400 / rows)
        Event.objects.bulk_update(events, ["received_at"])
        failed_event = failed_event or next(e.pk for e in events if e.status == "failed")
        messages = []
        for n, event in zip(numbers, events, strict=True):
            chat = big_chat if n < BIG_CHAT_MESSAGES else chats[rng.randrange(1, CHATS)]
            author = people[rng.randrange(PEOPLE)]
            messages.append(
                Message(
                    portal=chat.portal,
                    chat=chat,
                    author=author,
                    event=event,
                    message_id=10_000 + n,
                    direction="out" if n % 2 else "in",
                    text=f"[b]message[/b] {n} about the weather in Riga",
                )
            )
        Message.objects.bulk_create(messages)
        HandlerRun.objects.bulk_create(
            HandlerRun(
                event=event,
                handler="project.imbot_handlers.weather",
                status="failed" if event.status == "failed" else "succeeded",
                started_at=event.received_at,
                duration_ms=1.5,
                error="ConnectionError: timed out" if event.status == "failed" else "",
                traceback=TRACEBACK if event.status == "failed" else "",
            )
            for event in events
        )
        CommandInvocation.objects.bulk_create(
            CommandInvocation(
                event=event,
                command=commands[n % len(commands)],
                chat=messages[i].chat,
                user=messages[i].author,
                message_id=messages[i].message_id,
                params="riga",
            )
            for i, (n, event) in enumerate(zip(numbers, events, strict=True))
            if n % 10 == 0
        )
    return {
        "portal": portals[0].pk,
        "bot": bots[0].pk,
        "chat": big_chat.pk,
        "person": people[0].pk,
        "event": failed_event,
        "message": Message.objects.order_by("-pk").values_list("pk", flat=True)[0],
        "run": HandlerRun.objects.order_by("-pk").values_list("pk", flat=True)[0],
    }


# ------------------------------------------------------------------------------ measuring


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    from django.urls import reverse

    def url(name: str, *args: Any) -> str:
        return reverse(f"admin:imbot_app_{name}", args=args)

    from urllib.parse import urlencode

    from django.utils import timezone

    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = "?" + urlencode(
        {"received_at__gte": str(midnight), "received_at__lt": str(midnight + timedelta(days=1))}
    )
    return [
        ("app index + overview", reverse("admin:app_list", args=["imbot_app"])),
        ("events", url("event_changelist")),
        ("events, page 200", url("event_changelist") + "?p=200"),
        ("events, failed", url("event_changelist") + "?status__exact=failed"),
        ("events, by name", url("event_changelist") + "?name=ONIMCOMMANDADD"),
        ("events, by portal", url("event_changelist") + f"?portal__id__exact={ids['portal']}"),
        ("events, today", url("event_changelist") + today),
        ("event page", url("event_change", ids["event"])),
        ("messages", url("message_changelist")),
        ("messages, out", url("message_changelist") + "?direction__exact=out"),
        ("messages, in a chat", url("message_changelist") + f"?chat={ids['chat']}"),
        ("messages, search", url("message_changelist") + "?q=Riga+99"),
        ("message page", url("message_change", ids["message"])),
        ("chats", url("chat_changelist")),
        ("chat page (5,000 messages)", url("chat_change", ids["chat"])),
        ("chat page, first page", url("chat_change", ids["chat"]) + "?transcript_page=1"),
        ("people", url("chatuser_changelist")),
        ("handler runs", url("handlerrun_changelist")),
        ("handler runs, failed", url("handlerrun_changelist") + "?status__exact=failed"),
        ("handler run page", url("handlerrun_change", ids["run"])),
        ("command invocations", url("commandinvocation_changelist")),
        ("portals", url("portal_changelist")),
        ("portal page", url("portal_change", ids["portal"])),
        ("credentials", url("credential_changelist")),
        ("bots", url("bot_changelist")),
        ("bot page", url("bot_change", ids["bot"])),
        ("commands", url("command_changelist")),
    ]


def measure(ids: dict[str, int]) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.create_superuser("bench", "bench@example.com", "x"))
    print(f"\n{'page':32} {'median ms':>10} {'queries':>8}")
    slow = []
    for label, address in pages(ids):
        assert client.get(address).status_code == 200, address  # warm-up
        timings = []
        for _ in range(REPEAT):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(address)
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (address, response.status_code)
        median = statistics.median(timings)
        if median > SLOW_MS:
            slow.append(label)
        print(f"{label:32} {median:>10.1f} {len(captured.captured_queries):>8}")
    print(f"\nslower than {SLOW_MS:.0f} ms: {', '.join(slow) if slow else 'none'}")


# ------------------------------------------------------------------------------ databases


if __name__ == "__main__":
    main()
