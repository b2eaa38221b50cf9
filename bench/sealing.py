"""What sealing costs on the event path: one seal, unseal, digest and comparison, in µs.

    .venv/bin/python bench/sealing.py            # 20,000 rounds of each
    .venv/bin/python bench/sealing.py -n 100000

An ONIMBOTMESSAGEADD carries two token sets (the user's and the bot's): the store seals four
tokens and the authentication computes one HMAC, so the per-event cost printed is
``4 x seal + 1 x token_matches``.  A REST call unseals one access token when it loads the
Credential.  ``bench/ingest.py`` measures the whole request (events/s, statements per event);
this isolates the part sealing adds.  It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="rounds per operation (20000)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from imbot_app import sealing

    token = secrets.token_hex(35)  # 70 characters, as Bitrix24's access tokens
    sealed, digest = sealing.seal(token), sealing.digest(token)
    operations = {
        "seal": lambda: sealing.seal(token),
        "unseal": lambda: sealing.unseal(sealed),
        "digest": lambda: sealing.digest(token),
        "token_matches": lambda: sealing.token_matches(digest, token),
    }
    micros = {}
    for name, operation in operations.items():
        micros[name] = min(timeit.repeat(operation, number=args.n, repeat=3)) / args.n * 1e6
        print(f"{name:>14}: {micros[name]:7.1f} µs")
    per_event = 4 * micros["seal"] + micros["token_matches"]
    print(f"{'per message':>14}: {per_event:7.1f} µs (4 seals + 1 comparison); no extra SQL")
    print(f"stored sizes: token {len(token)}, sealed {len(sealed)}, digest {len(digest)} chars")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
