"""MkDocs hook: the reference pages' tables, generated from the code they describe.

- ``<!-- generated: settings -->`` becomes one table of every ``IMBOT_*`` setting: its default
  from ``imbot_app.conf.DEFAULTS`` and its description from the comment above it in
  ``imbot_app/conf.py`` (a comment describes every key below it up to the next comment), the
  one place defaults live.
- ``<!-- generated: commands -->`` becomes a section per management command in
  ``imbot_app/management/commands``: its help and a table of its own options, read from the
  command's argparse parser (Django's common options left out).

tests/test_docs.py checks that both list everything there is.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "imbot_app" / "conf.py"
COMMANDS = ROOT / "imbot_app" / "management" / "commands"
SETTINGS_MARKER = "<!-- generated: settings -->"
COMMANDS_MARKER = "<!-- generated: commands -->"
# Options every Django command has; the page lists each command's own.
DJANGO_OPTIONS = frozenset(
    {
        "-h",
        "--version",
        "-v",
        "--settings",
        "--pythonpath",
        "--traceback",
        "--no-color",
        "--force-color",
        "--skip-checks",
    }
)


# --------------------------------------------------------------------------- settings


def setting_comments(source: str) -> dict[str, str]:
    """Each DEFAULTS key -> the comment block that describes it (the nearest one above)."""
    tree = ast.parse(source)
    defaults = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign | ast.Assign)
        and isinstance(node.value, ast.Dict)
        and "DEFAULTS" in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node)
    )
    assert isinstance(defaults, ast.Dict)
    lines = source.splitlines()
    described: dict[str, str] = {}
    comment: list[str] = []
    previous_was_comment = False
    key_lines = {
        key.lineno: key.value
        for key in defaults.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }
    for number in range(defaults.lineno, (defaults.end_lineno or defaults.lineno) + 1):
        text = lines[number - 1].strip()
        if text.startswith("#"):
            if not previous_was_comment:
                comment = []
            comment.append(text.lstrip("#").strip())
            previous_was_comment = True
            continue
        previous_was_comment = False
        if number in key_lines:
            described[key_lines[number]] = " ".join(comment)
    return described


def _django() -> None:
    """Django set up with the example project's settings (the command modules need models)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """The Markdown table of every IMBOT_* setting, in conf.py's order."""
    _django()
    from imbot_app.conf import DEFAULTS

    comments = setting_comments(CONF.read_text())
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for key, default in DEFAULTS.items():
        rows.append(f"| `{key}` | `{_cell(repr(default))}` | {_cell(comments.get(key, ''))} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- commands


def command_names() -> list[str]:
    """The management commands imbot_app ships (modules not starting with ``_``)."""
    return sorted(p.stem for p in COMMANDS.glob("*.py") if not p.stem.startswith("_"))


def _options(parser: Any) -> Iterator[tuple[str, str]]:
    for action in parser._actions:
        names = [name for name in action.option_strings if name not in DJANGO_OPTIONS]
        if not names or set(action.option_strings) & DJANGO_OPTIONS:
            continue
        metavar = action.metavar or (action.dest.upper() if action.nargs != 0 else "")
        spelled = ", ".join(f"{name} {metavar}".strip() for name in names)
        help_text = (action.help or "").replace("%%", "%")
        if action.required:
            help_text += " (required)"
        yield spelled, help_text


def commands_reference() -> str:
    """A section per command: its help, usage and own options."""
    _django()
    from django.core.management import load_command_class

    sections = []
    for name in command_names():
        command = load_command_class("imbot_app", name)
        parser = command.create_parser("manage.py", name)
        rows = [f"| `{_cell(spelled)}` | {_cell(text)} |" for spelled, text in _options(parser)]
        table = ["| option | what it does |", "| --- | --- |", *rows] if rows else []
        sections.append("\n".join([f"## `{name}`", "", _cell(str(command.help)), "", *table]))
    return "\n\n".join(sections)


# --------------------------------------------------------------------------- the hook


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if COMMANDS_MARKER in markdown:
        markdown = markdown.replace(COMMANDS_MARKER, commands_reference())
    return markdown
