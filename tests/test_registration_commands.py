"""manage.py imbot_register / imbot_unregister against the fake Bitrix24: output, exit status."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imbot_app.models import Bot, Portal
from imbot_app.testing import FakeBitrix24
from tests.registration_kit import HANDLER_URL, configure, portal_on, rest_calls

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    configure(settings, fake_b24)
    return fake_b24


def run(name: str, *args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def named(domain: str, fake: FakeBitrix24) -> Portal:
    return portal_on(fake, domain=domain)[1]


def live_bots(portal: Portal) -> int:
    return Bot.objects.filter(portal=portal, deleted_at=None).count()


# --------------------------------------------------------------------------- imbot_register


def test_register_prints_a_table_per_portal_and_a_tally(fake) -> None:
    first, second = named("a.bitrix24.com", fake), named("b.bitrix24.com", fake)

    out = run("imbot_register")

    assert f"Handler URL: {HANDLER_URL}" in out
    assert "Bot echobot (B): /echo, /help" in out
    assert f"[1/2] a.bitrix24.com ({first.member_id})" in out
    assert f"[2/2] b.bitrix24.com ({second.member_id})" in out
    lines = out.splitlines()
    header = lines.index(f"[1/2] a.bitrix24.com ({first.member_id})")
    assert lines[header + 1].split() == ["action", "bot", "target", "result"]
    assert lines[header + 3].split()[:5] == ["register", "bot", "echobot", "done:", "BOT_ID"]
    assert "register command  echobot  /echo" in out
    assert "bind event                 ONAPPUNINSTALL  done: bound" in out
    assert out.rstrip().endswith("2 portals: 2 ok, 0 failed")
    assert live_bots(first) == live_bots(second) == 1


def test_a_second_run_registers_nothing(fake) -> None:
    named("a.bitrix24.com", fake)
    run("imbot_register")
    before = len(fake.calls)

    out = run("imbot_register")

    assert len(fake.calls) == before
    assert "nothing to do" in out
    assert (
        "unchanged: echobot, echobot /echo, echobot /help, ONAPPINSTALL, ONAPPUPDATE, "
        "ONAPPUNINSTALL" in out
    )
    assert "1 portal: 1 ok, 0 failed" in out


def test_a_failing_portal_does_not_stop_the_others_and_fails_the_command(fake) -> None:
    first = named("a.bitrix24.com", fake)
    broken = named("b.bitrix24.com", fake)
    third = named("c.bitrix24.com", fake)
    fake.fail_method("imbot.register", member_id=broken.member_id, error="MAX_COUNT_ERROR")
    out = io.StringIO()

    with pytest.raises(CommandError, match="3 portals: 2 ok, 1 failed") as raised:
        call_command("imbot_register", stdout=out, stderr=io.StringIO())

    assert raised.value.returncode == 1
    text = out.getvalue()
    assert "FAILED: register bot echobot: imbot.register: MAX_COUNT_ERROR" in text
    assert "skipped: an earlier action failed" in text
    assert (live_bots(first), live_bots(broken), live_bots(third)) == (1, 0, 1)
    broken.refresh_from_db()
    assert "MAX_COUNT_ERROR" in broken.registration_error


def test_portals_that_cannot_be_called_fail_with_a_clear_reason(fake) -> None:
    ok = named("a.bitrix24.com", fake)
    reauth = named("b.bitrix24.com", fake)
    Portal.objects.filter(pk=reauth.pk).update(status=Portal.Status.REAUTH_REQUIRED)
    gone = named("c.bitrix24.com", fake)
    Portal.objects.filter(pk=gone.pk).update(status=Portal.Status.UNINSTALLED)
    out = io.StringIO()

    # Every portal but the uninstalled one is tried.
    with pytest.raises(CommandError, match="2 portals: 1 ok, 1 failed"):
        call_command("imbot_register", stdout=out)

    assert "needs re-authorisation" in out.getvalue()
    assert gone.member_id not in out.getvalue()
    assert live_bots(ok) == 1

    # Named explicitly, the uninstalled one says why it cannot be registered.
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 portal: 0 ok, 1 failed"):
        call_command("imbot_register", portal=gone.member_id, stdout=out)
    assert "is uninstalled: it must install the application again" in out.getvalue()


def test_one_portal_only(fake) -> None:
    first, second = named("a.bitrix24.com", fake), named("b.bitrix24.com", fake)
    out = run("imbot_register", "--portal", second.member_id)
    assert "[1/1] b.bitrix24.com" in out
    assert (live_bots(first), live_bots(second)) == (0, 1)
    with pytest.raises(CommandError, match="no portal with member_id 'nope' is known"):
        run("imbot_register", "--portal", "nope")


def test_a_dry_run_prints_the_plan_and_calls_nothing(fake) -> None:
    named("a.bitrix24.com", fake)

    out = run("imbot_register", "--dry-run")

    assert fake.calls == []
    assert not Bot.objects.exists()
    assert "would call imbot.register, imbot.update" in out
    assert "would call event.bind" in out
    assert "1 portal: dry run, nothing was sent to Bitrix24" in out


def test_a_dry_run_exits_non_zero_when_a_portal_would_fail(fake) -> None:
    portal = named("a.bitrix24.com", fake)
    Portal.objects.filter(pk=portal.pk).update(status=Portal.Status.REAUTH_REQUIRED)
    out = io.StringIO()
    with pytest.raises(CommandError, match="dry run, nothing was sent to Bitrix24; 1 would fail"):
        call_command("imbot_register", "--dry-run", stdout=out)
    assert "would fail: invalid_grant" in out.getvalue()
    assert fake.calls == []


def test_force_sends_everything_again(fake) -> None:
    named("a.bitrix24.com", fake)
    run("imbot_register")
    out = run("imbot_register", "--force")
    assert "update bot" in out and "update command" in out
    assert "was already bound" in out


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("IMBOT_PUBLIC_URL", "", "IMBOT_PUBLIC_URL is not set"),
        ("IMBOT_BOTS", [], "no bots are declared"),
        ("IMBOT_BOTS", [{"code": "x"}], "IMBOT_BOTS\\[0\\]: bot 'x' needs a name"),
    ],
)
def test_configuration_problems_stop_before_any_portal(fake, settings, setting, value, message):
    named("a.bitrix24.com", fake)
    setattr(settings, setting, value)
    with pytest.raises(CommandError, match=message):
        run("imbot_register")
    assert fake.calls == []


def test_no_installed_portals(fake) -> None:
    assert "No installed portals." in run("imbot_register")


def test_quiet_output_shows_only_failures_and_the_tally(fake) -> None:
    named("a.bitrix24.com", fake)
    out = run("imbot_register", verbosity=0)
    assert out.strip() == "1 portal: 1 ok, 0 failed"


# --------------------------------------------------------------------------- imbot_unregister


def test_unregister_one_bot_everywhere(fake) -> None:
    first, second = named("a.bitrix24.com", fake), named("b.bitrix24.com", fake)
    run("imbot_register")

    out = run("imbot_unregister", "--bot", "echobot", "--noinput")

    assert len(fake.calls_to("imbot.unregister")) == 2
    assert "unregister bot  echobot" in out
    assert "2 portals: 2 ok, 0 failed" in out
    assert live_bots(first) == live_bots(second) == 0


def test_unregister_asks_first(fake, monkeypatch) -> None:
    portal = named("a.bitrix24.com", fake)
    run("imbot_register")
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))

    with pytest.raises(CommandError, match="cancelled"):
        run("imbot_unregister")

    assert fake.calls_to("imbot.unregister") == []
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    run("imbot_unregister")
    assert live_bots(portal) == 0


def test_a_dry_unregister_calls_nothing(fake) -> None:
    portal = named("a.bitrix24.com", fake)
    run("imbot_register")
    out = run("imbot_unregister", "--dry-run")
    assert "would call imbot.unregister" in out
    assert fake.calls_to("imbot.unregister") == []
    assert live_bots(portal) == 1


def test_unregister_failures_fail_the_command_after_trying_every_portal(fake) -> None:
    first, second = named("a.bitrix24.com", fake), named("b.bitrix24.com", fake)
    run("imbot_register")
    fake.fail_method("imbot.unregister", member_id=first.member_id)
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 portals: 1 ok, 1 failed"):
        call_command("imbot_unregister", "--noinput", stdout=out)
    assert "INTERNAL_SERVER_ERROR" in out.getvalue()
    assert (live_bots(first), live_bots(second)) == (1, 0)
    assert rest_calls(fake).count("imbot.unregister") == 2
