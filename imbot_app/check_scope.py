"""Which management command is running, so configuration warnings show where they help.

``imbot_app.W002`` (no ``IMBOT_CLIENT_ID``), ``W003`` (no usable ``IMBOT_PUBLIC_URL``) and
``W020`` (no ``IMBOT_ENCRYPTION_KEYS``) are true of every development setup until the application
exists.  Django runs the system checks
before nearly every management command, so they used to print on each ``migrate``,
``createsuperuser`` or ``imbot_replay`` and twice in ``make run`` (``migrate``, then
``runserver``).  They now show where someone looks at the configuration: ``manage.py check``
and ``runserver`` (once per start; the autoreloader's parent process runs no checks), and
whenever the checks run outside a management command (``run_checks()`` in a test).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import PurePath

SHOWN_IN = frozenset({"check", "runserver"})
DJANGO_PROGRAMS = frozenset({"manage.py", "django-admin", "django-admin.py"})


def running_command(argv: Sequence[str] | None = None) -> str | None:
    """The management command this process runs (``manage.py migrate`` -> ``"migrate"``).

    ``None`` when the process is not ``manage.py``, ``django-admin`` or ``python -m django``
    (a test runner, a WSGI server, a script calling ``django.setup()``).
    """
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        return None
    program = PurePath(argv[0])
    is_django = program.name in DJANGO_PROGRAMS or (
        program.name == "__main__.py" and program.parent.name == "django"
    )
    return argv[1] if is_django else None


def show_configuration_warnings(argv: Sequence[str] | None = None) -> bool:
    """Whether W002/W003/W020 belong in this process's output (see the module docstring)."""
    command = running_command(argv)
    return command is None or command in SHOWN_IN
