"""Quiet by default: one line per failure, warnings once, nothing cut, no surprise deletions."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imbot_app.admin.overview import build
from imbot_app.check_scope import running_command, show_configuration_warnings
from imbot_app.checks import check_declared_bots, check_install_verification
from imbot_app.lifecycle.registration_wait import WAITING
from imbot_app.models import Event, Portal
from tests.admin_scenes import talk
from tests.test_replay import FLAKY, live, replay, replay_failing, switch

__all__ = ["live", "switch"]  # fixtures, shared with test_replay

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- imbot_replay


def test_replay_prints_one_line_per_failed_handler_and_no_traceback(
    live, deliver, switch, caplog
) -> None:
    switch.broken = True
    first, second = talk(live, deliver, ["fail a", "fail b"])
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="imbot_app"):
        _, err, _ = replay_failing("--status", "failed", "--verbosity", "0")

    assert err.splitlines() == [
        f"event {first.pk} failed: {FLAKY}: RuntimeError: the weather service is down",
        f"event {second.pk} failed: {FLAKY}: RuntimeError: the weather service is down",
    ]
    assert not [r for r in caplog.records if r.exc_info]


def test_replay_shows_tracebacks_with_verbosity_2(live, deliver, switch, caplog) -> None:
    switch.broken = True
    [failed] = talk(live, deliver, ["fail a"])
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="imbot_app"):
        out, _, _ = replay_failing("--status", "failed", "--verbosity", "2")

    assert f"event {failed.pk} failed" in out
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].name == "imbot_app.dispatch"
    # The filter is gone after the command: a later failure logs its traceback again.
    assert not logging.getLogger("imbot_app.dispatch").filters


def test_dry_run_counts_only_events_some_handler_would_run(live, deliver, switch) -> None:
    [message] = talk(live, deliver, ["hello"])
    unhandled = deliver(live.command("help", "", command_id=105)).json()["event_id"]
    assert Event.objects.get(pk=unhandled).status == "processed"  # no handler matched

    out, _ = replay("--dry-run", "--force")

    assert f"#{message.pk} ONIMBOTMESSAGEADD processed" in out
    assert f"#{unhandled} ONIMCOMMANDADD processed" in out
    assert "skip, no handler matches" in out
    assert "Dry run: 1 event would run, 1 would be skipped" in out


# --------------------------------------------------------------------------- imbot_prune


@pytest.mark.django_db
@pytest.mark.parametrize("age", ["0d", "12h", "86399s"])
def test_prune_refuses_less_than_a_day_without_force(age: str) -> None:
    portal = Portal.objects.create(member_id="p" * 32)
    Event.objects.create(portal=portal, name="ONIMBOTMESSAGEADD", payload={})
    with pytest.raises(CommandError, match=r"under a day.*--force"):
        call_command("imbot_prune", "--older-than", age, stdout=io.StringIO())
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_prune_under_a_day_with_force_and_a_day_without() -> None:
    portal = Portal.objects.create(member_id="p" * 32)
    Event.objects.create(portal=portal, name="ONIMBOTMESSAGEADD", payload={})
    out = io.StringIO()
    call_command("imbot_prune", "--older-than", "1d", "--verbosity", "0", stdout=out)
    assert "Deleted 0 events" in out.getvalue()
    call_command("imbot_prune", "--older-than", "0s", "--force", "-v", "0", stdout=out)
    assert "Deleted 1 event " in out.getvalue()
    assert not Event.objects.exists()


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("argv", "command", "shown"),
    [
        (["manage.py", "check"], "check", True),
        (["/srv/app/manage.py", "runserver", "8000"], "runserver", True),
        (["manage.py", "migrate", "--noinput"], "migrate", False),
        (["/venv/bin/django-admin", "imbot_replay"], "imbot_replay", False),
        (["/usr/lib/python3/site-packages/django/__main__.py", "shell"], "shell", False),
        (["/venv/bin/pytest", "tests"], None, True),
        (["gunicorn"], None, True),
    ],
)
def test_configuration_warnings_show_in_check_and_runserver_only(argv, command, shown) -> None:
    assert running_command(argv) == command
    assert show_configuration_warnings(argv) is shown


def test_w002_and_w003_are_reported_outside_commands(settings: Any) -> None:
    settings.IMBOT_CLIENT_ID = ""
    settings.IMBOT_PUBLIC_URL = ""
    messages = [*check_install_verification(), *check_declared_bots()]
    ids = {message.id for message in messages}
    assert {"imbot_app.W002", "imbot_app.W003"} <= ids


def manage(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IMBOT_CLIENT_ID": "",
        "IMBOT_PUBLIC_URL": "",
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_w002_and_w003_print_once_in_check_and_not_before_other_commands(tmp_path) -> None:
    other = manage("showmigrations", "imbot_app", tmp_path=tmp_path)
    assert "imbot_app.W00" not in other.stdout + other.stderr

    check = manage("check", tmp_path=tmp_path)
    output = check.stdout + check.stderr
    assert output.count("(imbot_app.W002)") == 1
    assert output.count("(imbot_app.W003)") == 1


# --------------------------------------------------------------------------- install, admin


@pytest.mark.django_db
def test_the_admin_shows_a_portal_waiting_for_the_public_url(admin_client) -> None:
    portal = Portal.objects.create(
        member_id="a" * 32,
        domain="waiting.bitrix24.com",
        registration_error=f"{WAITING}: IMBOT_PUBLIC_URL is not set.",
    )
    html = admin_client.get("/admin/imbot_app/portal/").content.decode()
    assert WAITING in html
    assert "registration failed" not in html
    page = admin_client.get(f"/admin/imbot_app/portal/{portal.pk}/change/").content.decode()
    assert WAITING in page


@pytest.mark.django_db
@pytest.mark.parametrize("hour", range(24))
def test_no_hour_label_of_the_chart_is_cut(hour: int) -> None:
    overview = build(now=datetime(2026, 11, 27, hour, 30, tzinfo=UTC))
    labels = [bar for bar in overview.bars if bar.label]
    assert len(labels) == 4
    for bar in labels:
        assert bar.x + len(bar.label) * 6 <= overview.width, bar.label
