"""The documentation site: generated reference tables are complete, marked examples run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from imbot_app.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# A fenced block right after "<!-- test: pytest -->" (a test module) or "<!-- test: python -->"
# (a program) is run by this file; the marker is invisible on the site.
MARKED_BLOCK = re.compile(
    r"<!-- test: (?P<kind>pytest|python) -->\s*\n```[a-z]*\n(?P<code>.*?)\n```", re.DOTALL
)


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks/reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_table_lists_every_setting_with_a_description() -> None:
    table = load_hook().settings_table()
    rows = [line for line in table.splitlines() if line.startswith("| `IMBOT_")]
    assert [row.split("`")[1] for row in rows] == list(DEFAULTS)
    for row in rows:
        description = row.rsplit("|", 2)[1].strip()
        assert description, f"no comment above {row.split('`')[1]} in imbot_app/conf.py"
    assert "| `IMBOT_DISPATCH` | `'inline'` | How handlers run once an event is stored" in table
    assert "| `IMBOT_MAX_BODY_BYTES` | `1048576` |" in table


def test_the_commands_page_lists_every_command_with_its_options() -> None:
    hook = load_hook()
    shipped = sorted(
        path.stem
        for path in (ROOT / "imbot_app/management/commands").glob("*.py")
        if not path.stem.startswith("_")
    )
    page = hook.commands_reference()
    assert re.findall(r"^## `(\w+)`$", page, re.MULTILINE) == shipped
    assert "| `--older-than AGE` | received longer ago than this: 30d, 12h, 2w (required) |" in page
    assert '| `--command "/WORD PARAMS"` |' in page
    assert "--settings" not in page and "--traceback" not in page


def marked_blocks() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for number, match in enumerate(MARKED_BLOCK.finditer(page.read_text()), 1):
            name = f"{page.relative_to(DOCS).with_suffix('')}-{number}"
            found.append((name, match["kind"], match["code"]))
    return found


def test_the_docs_have_marked_examples() -> None:
    kinds = {kind for _, kind, _ in marked_blocks()}
    assert kinds == {"pytest", "python"}


def test_the_marked_test_modules_pass_as_written(tmp_path: Path) -> None:
    blocks = [(name, code) for name, kind, code in marked_blocks() if kind == "pytest"]
    for name, code in blocks:
        slug = re.sub(r"\W+", "_", name)
        (tmp_path / f"test_{slug}.py").write_text(code + "\n")
    # A database of their own (SQLite in tmp_path): on PostgreSQL they would share, and drop,
    # this run's test database.
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": str(ROOT),
        "IMBOT_TEST_SQLITE": str(tmp_path / "test.sqlite3"),
    }
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    tests = sum(len(re.findall(r"^def test_", code, re.MULTILINE)) for _, code in blocks)
    assert f"{tests} passed" in result.stdout


@pytest.mark.parametrize(
    ("name", "code"),
    [(name, code) for name, kind, code in marked_blocks() if kind == "python"],
)
def test_the_marked_programs_run(name: str, code: str, tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(code)
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(program)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
