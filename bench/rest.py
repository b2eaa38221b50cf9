"""Replies through RestClient to the fake Bitrix24 with both leaky buckets at the same limit.

    .venv/bin/python bench/rest.py [-n 500] [--rate 20] [--burst 50] [--threads 4]

The fake enforces Bitrix24's leaky bucket (``--rate`` requests/s, bursts of ``--burst``) and
answers ``QUERY_LIMIT_EXCEEDED`` past it; the client's own bucket is set to the same numbers.
Prints calls/s, how many calls were refused and retried, and how many replies were lost (the
fake's message count against what was sent: must be 0).  Bitrix24's real limit is 2/s; the
default here is 20/s so the run takes seconds, the arithmetic is the same.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="replies to send")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4, help="concurrent senders")
    args = parser.parse_args()

    database = Path(tempfile.mkdtemp()) / "bench-rest.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from imbot_app.models import Portal
    from imbot_app.outbound.rest import RestClient
    from imbot_app.testing import EventFactory, FakeBitrix24

    with FakeBitrix24() as fake:
        settings.IMBOT_CLIENT_ID, settings.IMBOT_CLIENT_SECRET = fake.client_id, fake.client_secret
        settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = args.rate, args.burst
        settings.IMBOT_REST_MAX_RETRIES = 20
        settings.IMBOT_REST_BACKOFF = 0.05
        fake.limit_rate(rate=args.rate, burst=args.burst)
        factory = EventFactory.connected(fake)
        member_id = factory.member_id

        latencies: list[float] = []
        retries = [0]
        failures: list[str] = []
        lock = threading.Lock()
        counter = iter(range(args.n))

        def sender() -> None:
            client = RestClient(Portal.objects.get(member_id=member_id), factory.bot_id)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                started = time.perf_counter()
                try:
                    client.call("imbot.message.add", {"DIALOG_ID": "1", "MESSAGE": f"reply {i}"})
                except Exception as exc:
                    with lock:
                        failures.append(repr(exc))
                with lock:
                    latencies.append(time.perf_counter() - started)
            with lock:
                retries[0] += client.stats.retries
            connection.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        delivered = len(fake.messages(member_id))
        refused = len(fake.calls_to("imbot.message.add")) - delivered
        latencies.sort()

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

        print(f"limit (fake and client)  {args.rate:g}/s, burst {args.burst}")
        print(f"replies sent             {args.n} from {args.threads} threads")
        print(f"elapsed                  {elapsed:.2f} s")
        print(f"calls/s                  {args.n / elapsed:.1f}")
        ceiling = args.n / max((args.n - args.burst) / args.rate, 1e-9)
        print(f"bucket's ceiling         {ceiling:.1f} calls/s")
        print(f"refused by the fake      {refused}")
        print(f"retries                  {retries[0]}")
        print(f"errors                   {len(failures)}")
        print(f"lost calls               {args.n - delivered}")
        print(f"latency p50 / p99        {pct(0.5):.1f} / {pct(0.99):.1f} ms")
        print(f"mean latency             {statistics.mean(latencies) * 1000:.1f} ms")
        if failures:
            print("first error:", failures[0])
    database.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
