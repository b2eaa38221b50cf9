"""RestClient against the fake Bitrix24: tokens, refresh races, rate limits, batch, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from imbot_app import errors
from imbot_app.models import Credential, Portal
from imbot_app.outbound.ratelimit import LeakyBucket
from imbot_app.outbound.rest import RestClient, oauth_token_url
from imbot_app.signals import token_refresh_failed, token_refreshed
from imbot_app.testing import EventFactory, FakeBitrix24

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rest_settings(settings: Any, fake_b24: FakeBitrix24) -> Any:
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_CLIENT_SECRET = fake_b24.client_secret
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]  # refreshes go only to these
    settings.IMBOT_REST_BACKOFF = 0.01
    settings.IMBOT_RATE_LIMIT = 1000.0
    settings.IMBOT_RATE_BURST = 1000
    return settings


@pytest.fixture
def portal_on_fake(db: None, rest_settings: Any, fake_b24: FakeBitrix24) -> EventFactory:
    return EventFactory.connected(fake_b24)


def listed(factory: EventFactory) -> dict[str, Any]:
    """What imbot.bot.list answers for the factory's portal: its one bot."""
    code = factory.bot_code
    return {
        str(factory.bot_id): {"ID": factory.bot_id, "NAME": code, "CODE": code, "OPENLINE": "N"}
    }


def portal_of(factory: EventFactory) -> Portal:
    return Portal.objects.get(member_id=factory.member_id)


class Received:
    """Collects what a signal sends."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_oauth_url_follows_the_portal_region() -> None:
    assert oauth_token_url("https://oauth.bitrix24.tech/rest/") == (
        "https://oauth.bitrix24.tech/oauth/token/"
    )
    assert oauth_token_url("https://oauth.bitrix.info/rest/") == (
        "https://oauth.bitrix.info/oauth/token/"
    )


def test_call_returns_the_result_and_uses_the_stored_endpoint(portal_on_fake, fake_b24) -> None:
    client = RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id)
    bot_id = client.call(
        "imbot.register",
        {
            "CODE": "echo",
            "TYPE": "B",
            "EVENT_HANDLER": "https://bot.example/imbot/events/",
            "PROPERTIES": {"NAME": "Echo"},
        },
    )
    assert isinstance(bot_id, int)
    [call] = fake_b24.calls_to("imbot.register")
    assert call.params["PROPERTIES"] == {"NAME": "Echo"}  # sent as JSON, nested intact
    bot_token = Credential.objects.get(user_id=portal_on_fake.bot_id).access_token
    assert call.token == bot_token


def test_unknown_user_falls_back_to_the_installer(portal_on_fake, fake_b24) -> None:
    client = RestClient(portal_of(portal_on_fake), user_id=999_999)
    assert client.call("imbot.bot.list") == listed(portal_on_fake)
    installer = Credential.objects.get(user_id=portal_on_fake.user_id).access_token
    assert fake_b24.calls_to("imbot.bot.list")[0].token == installer


def test_expired_token_is_refreshed_once_and_the_call_retried(
    portal_on_fake, fake_b24, django_capture_on_commit_callbacks
) -> None:
    refreshed = Received()
    token_refreshed.connect(refreshed)
    try:
        before = Credential.objects.get(user_id=portal_on_fake.bot_id)
        fake_b24.expire()
        client = RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id)

        with django_capture_on_commit_callbacks(execute=True):
            assert client.call("imbot.bot.list") == listed(portal_on_fake)
    finally:
        token_refreshed.disconnect(refreshed)

    after = Credential.objects.get(user_id=portal_on_fake.bot_id)
    assert fake_b24.refreshes == 1
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token
    assert after.expires_at is not None
    [refresh] = fake_b24.calls_to("oauth/token")
    assert refresh.params["refresh_token"] == before.refresh_token
    assert refresh.params["client_id"] == fake_b24.client_id
    assert [c["user_id"] for c in refreshed.calls] == [portal_on_fake.bot_id]
    assert client.stats.refreshes == 1


def test_a_refresh_token_works_once_at_the_fake(portal_on_fake, fake_b24) -> None:
    """The fake rotates like Bitrix24: the spent refresh token is refused afterwards."""
    import requests

    spent = Credential.objects.get(user_id=portal_on_fake.bot_id).refresh_token
    fake_b24.expire()
    RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id).call("imbot.bot.list")
    answer = requests.get(
        f"{fake_b24.url}/oauth/token/",
        params={
            "grant_type": "refresh_token",
            "client_id": fake_b24.client_id,
            "client_secret": fake_b24.client_secret,
            "refresh_token": spent,
        },
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_invalid_grant_marks_the_portal_and_raises(
    portal_on_fake, fake_b24, django_capture_on_commit_callbacks
) -> None:
    failed = Received()
    token_refresh_failed.connect(failed)
    try:
        fake_b24.expire()
        fake_b24.revoke_refresh_tokens()
        client = RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id)
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(errors.ReauthorizationRequired) as caught,
        ):
            client.call("imbot.bot.list")
    finally:
        token_refresh_failed.disconnect(failed)

    assert caught.value.error == "invalid_grant"
    assert portal_of(portal_on_fake).status == Portal.Status.REAUTH_REQUIRED
    assert len(failed.calls) == 1
    assert failed.calls[0]["error"].error == "invalid_grant"
    # Nothing more is sent for a portal that needs re-authorisation.
    sent = len(fake_b24.calls)
    with pytest.raises(errors.ReauthorizationRequired):
        RestClient(portal_of(portal_on_fake)).call("imbot.bot.list")
    assert len(fake_b24.calls) == sent


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_refresh_once(rest_settings, fake_b24) -> None:
    factory = EventFactory.connected(fake_b24)
    fake_b24.expire()
    barrier = threading.Barrier(20)
    results: list[Any] = []
    failures: list[BaseException] = []

    def call() -> None:
        try:
            client = RestClient(Portal.objects.get(member_id=factory.member_id), factory.bot_id)
            client.credential()  # everybody holds the expired token before anyone refreshes
            barrier.wait(timeout=10)
            results.append(client.call("imbot.bot.list"))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert results == [listed(factory)] * 20
    assert fake_b24.refreshes == 1


REFRESH_SCRIPT = """
import os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()
from django.conf import settings
from imbot_app.models import Portal
from imbot_app.outbound.rest import RestClient
settings.IMBOT_CLIENT_ID, settings.IMBOT_CLIENT_SECRET = sys.argv[2], sys.argv[3]
client = RestClient(Portal.objects.get(member_id=sys.argv[1]), int(sys.argv[4]))
client.credential()
start = float(sys.argv[5])
time.sleep(max(0.0, start - time.time()))
print(len(client.call("imbot.bot.list")), client.stats.refreshes, flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_refresh_once(rest_settings, fake_b24) -> None:
    factory = EventFactory.connected(fake_b24)
    fake_b24.expire()
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{database['NAME']}"
    else:
        url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "IMBOT_OAUTH_SERVERS": fake_b24.rest_url}
    start = time.time() + 2.0
    processes = [
        subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-c",
                REFRESH_SCRIPT,
                factory.member_id,
                fake_b24.client_id,
                fake_b24.client_secret,
                str(factory.bot_id),
                str(start),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    answers = sorted(out.split() for out, _ in outputs)
    assert answers == [["1", "0"], ["1", "1"]]  # both succeed; exactly one refreshed
    assert fake_b24.refreshes == 1


def test_query_limit_is_retried_with_backoff_and_nothing_lost(portal_on_fake, fake_b24) -> None:
    fake_b24.throttle(3)
    client = RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id)
    message_id = client.call("imbot.message.add", {"DIALOG_ID": "1", "MESSAGE": "hello"})
    assert client.stats.retries == 3
    assert fake_b24.messages(portal_on_fake.member_id)[message_id]["MESSAGE"] == "hello"
    assert len(fake_b24.calls_to("imbot.message.add")) == 4


def test_rate_limit_gives_up_after_the_bound(portal_on_fake, fake_b24, settings) -> None:
    settings.IMBOT_REST_MAX_RETRIES = 2
    fake_b24.throttle(10)
    client = RestClient(portal_of(portal_on_fake))
    with pytest.raises(errors.RateLimited) as caught:
        client.call("imbot.bot.list")
    assert caught.value.error == "QUERY_LIMIT_EXCEEDED"
    assert caught.value.status == 503
    assert client.stats.requests == 3


def test_operation_time_limit_429_is_retried(portal_on_fake, fake_b24) -> None:
    fake_b24.fail_next(
        2,
        error="OPERATION_TIME_LIMIT",
        description="Method is blocked due to operation time limit.",
        status=429,
    )
    client = RestClient(portal_of(portal_on_fake))
    assert client.call("imbot.bot.list") == listed(portal_on_fake)
    assert client.stats.retries == 2


def test_client_side_bucket_keeps_under_the_portal_limit(portal_on_fake, fake_b24, settings):
    fake_b24.limit_rate(rate=20.0, burst=3)
    settings.IMBOT_RATE_LIMIT = 20.0
    settings.IMBOT_RATE_BURST = 3
    client = RestClient(portal_of(portal_on_fake))
    started = time.monotonic()
    for _ in range(30):
        client.call("imbot.bot.list")
    elapsed = time.monotonic() - started
    assert client.stats.retries == 0  # never refused: we waited instead
    assert client.stats.requests == 30
    assert elapsed >= (30 - 2) / 20.0 * 0.9
    assert client.stats.waited > 0


def test_portal_budget_overrides_the_setting(portal_on_fake) -> None:
    portal = portal_of(portal_on_fake)
    portal.rate_limit, portal.rate_burst = 5.0, 250
    client = RestClient(portal)
    assert (client.bucket.rate, client.bucket.burst) == (5.0, 249)  # one slot of headroom


def test_leaky_bucket_arithmetic() -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = LeakyBucket("arith-" + str(time.time()), 2.0, 3, clock=lambda: now[0], sleep=sleep)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert bucket.try_acquire() == pytest.approx(0.5)  # then one every 1/rate seconds
    assert bucket.acquire() == pytest.approx(0.5)
    now[0] += 10  # drained
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_other_errors_are_typed_with_bitrix_code(portal_on_fake, fake_b24) -> None:
    fake_b24.fail_next(
        error="ACCESS_DENIED",
        description="REST API is available only on commercial plans",
        status=403,
    )
    with pytest.raises(errors.BitrixError) as caught:
        RestClient(portal_of(portal_on_fake)).call("imbot.bot.list")
    assert type(caught.value) is errors.BitrixError
    assert (caught.value.error, caught.value.status) == ("ACCESS_DENIED", 403)
    assert "commercial plans" in caught.value.description

    with pytest.raises(errors.BitrixError) as caught:
        RestClient(portal_of(portal_on_fake)).call("imbot.update", {"BOT_ID": 1, "FIELDS": {}})
    assert caught.value.error == "BOT_ID_ERROR"
    assert caught.value.method == "imbot.update"


def test_batch_is_chunked_by_fifty_with_errors_per_command(portal_on_fake, fake_b24) -> None:
    client = RestClient(portal_of(portal_on_fake), user_id=portal_on_fake.bot_id)
    commands: dict[str, tuple[str, dict[str, Any] | None]] = {
        f"m{i}": ("imbot.message.add", {"DIALOG_ID": "1", "MESSAGE": f"n{i}"}) for i in range(118)
    }
    commands["bad_bot"] = ("imbot.update", {"BOT_ID": 424242, "FIELDS": {"CODE": "x"}})
    commands["empty"] = ("imbot.message.add", {"DIALOG_ID": "1", "MESSAGE": ""})

    outcome = client.batch(commands)

    assert len(fake_b24.calls_to("batch")) == 3  # 50 + 50 + 20
    assert len(outcome.results) == 118
    sent = fake_b24.messages(portal_on_fake.member_id)
    assert {sent[outcome.results[f"m{i}"]]["MESSAGE"] for i in range(118)} == {
        f"n{i}" for i in range(118)
    }
    assert set(outcome.errors) == {"bad_bot", "empty"}
    assert outcome.errors["bad_bot"].error == "BOT_ID_ERROR"
    assert outcome.errors["empty"].error == "MESSAGE_EMPTY"
    assert not outcome.ok


def test_uninstalled_portal_and_missing_tokens_are_clear_errors(portal_on_fake, fake_b24) -> None:
    portal = portal_of(portal_on_fake)
    portal.status = Portal.Status.UNINSTALLED
    with pytest.raises(errors.PortalUnavailable, match="uninstalled"):
        RestClient(portal).call("imbot.bot.list")
    portal.status = Portal.Status.INSTALLED
    Credential.objects.all().delete()
    with pytest.raises(errors.PortalUnavailable, match="no tokens"):
        RestClient(portal).call("imbot.bot.list")
    assert fake_b24.calls == []
