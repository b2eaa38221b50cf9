"""Benchmark of the BB-code renderer on hostile chat text, 1 KB to 1 MB.

    .venv/bin/python bench/bbcode.py
    .venv/bin/python bench/bbcode.py --max-kb 256     # quicker

For each hostile shape (deep nesting, unclosed [code], endless [url= values, stray closers
under a full stack, quote lines, HTML metacharacters ...) and each size it renders the text
with no length limit (the admin cuts at IMBOT_ADMIN_TEXT_LIMIT; this measures the renderer
itself) and prints the best of three times in ms per KB and the renderer's own step count
per character (imbot_app.admin.bbcode.measure).  Linear rendering shows as flat columns.  It prints
figures; it is not a test (tests/test_bbcode_bounds.py bounds the steps).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 3

HOSTILE: dict[str, Callable[[int], str]] = {
    "[b]*n (RecursionError before)": lambda n: "[b]" * n,
    "[code]*n (quadratic before)": lambda n: "[code]" * n,
    "[url=aaaa... unclosed": lambda n: "[url=" + "a" * n,
    "[url=[url=[url=...": lambda n: "[url=" * n,
    "[b][i]*n [/b]*n misnested": lambda n: "[b][i]" * n + "[/b]" * n,
    "full stack + stray [/i]": lambda n: "[b]" * 16 + "[/i]" * n,
    "nested [url] + many tags": lambda n: "[url]" * 16 + "[b][/b]" * n + "[/url]" * 16,
    ">> quote lines": lambda n: ">> x\n" * n,
    "[code]>> lines": lambda n: "[code]>>\n" * n,
    "&<>\"' (escaping x5)": lambda n: "&<>\"'" * n,
    "ordinary formatted chat": lambda n: (
        "[b]Hi[/b] [i]there[/i], see [url]https://e.x/a[/url]\n" * n
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-kb", type=int, default=1024)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from imbot_app.admin.bbcode import measure

    sizes = [kb for kb in (1, 16, 128, 1024) if kb <= args.max_kb]
    header = "".join(f"{f'{kb} KB':>16}" for kb in sizes)
    print(f"{'hostile input':<34}{header}   (ms per KB / steps per char)")
    for name, make in HOSTILE.items():
        cells = []
        for kb in sizes:
            text = make(kb * 1024)[: kb * 1024]
            best = float("inf")
            for _ in range(REPEAT):
                started = time.perf_counter()
                _, steps = measure(text, limit=len(text))
                best = min(best, time.perf_counter() - started)
            cells.append(f"{best * 1000 / kb:8.3f} / {steps / len(text):4.1f}")
        print(f"{name:<34}" + "".join(f"{cell:>16}" for cell in cells))


if __name__ == "__main__":
    main()
