"""Running handlers: after the commit only, recorded, isolated from each other, at most once."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imbot_app import on_command, on_message, signals
from imbot_app.apps import ImbotAppConfig
from imbot_app.dispatch.claims import Outcome, worker_name
from imbot_app.dispatch.context import MessageContext
from imbot_app.dispatch.event_run import ABANDONED
from imbot_app.dispatch.hooks import event_stored
from imbot_app.dispatch.routing import handler_path, router
from imbot_app.dispatch.runner import BATCH_SIZE, run_event, run_events
from imbot_app.models import Event, HandlerRun, Portal
from imbot_app.testing import EventFactory, post_event

pytestmark = pytest.mark.usefixtures("isolated_routes")

ROOT = Path(__file__).resolve().parent.parent


class Rollback(Exception):
    pass


def runs_of(event_id: int) -> list[HandlerRun]:
    return list(HandlerRun.objects.filter(event_id=event_id).order_by("id"))


def store_only(client: Any, payload: dict[str, Any]) -> Event:
    """Post without running the on-commit hook (the test transaction never commits)."""
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    return Event.objects.get(pk=response.json()["event_id"])


# --------------------------------------------------------------------------- the commit


@pytest.mark.django_db(transaction=True)
def test_nothing_runs_before_the_commit_nor_after_a_rollback(client) -> None:
    factory = EventFactory.installed()
    seen: list[int] = []

    @on_message
    def record(message: MessageContext) -> None:
        seen.append(message.event.pk)

    with pytest.raises(Rollback), transaction.atomic():
        response = post_event(client, factory.message("rolled back"))
        assert response.status_code == 200
        assert Event.objects.filter(pk=response.json()["event_id"]).exists()
        assert seen == []  # stored, not committed: no handler yet
        raise Rollback
    assert seen == []
    assert not Event.objects.exists()
    assert not HandlerRun.objects.exists()

    with transaction.atomic():
        response = post_event(client, factory.message("committed"))
        assert seen == []
    assert seen == [response.json()["event_id"]]
    assert Event.objects.get().status == Event.Status.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_handlers_run_right_after_the_store_commits(client) -> None:
    factory = EventFactory.installed()
    statuses: list[str] = []

    @on_message
    def look(message: MessageContext) -> None:
        # Another connection's view would be the same: the row is committed.
        statuses.append(Event.objects.get(pk=message.event.pk).status)

    post_event(client, factory.message("now"))
    assert statuses == [Event.Status.RECEIVED]
    assert Event.objects.get().status == Event.Status.PROCESSED


# --------------------------------------------------------------------------- records


@pytest.mark.django_db
def test_every_run_is_recorded_and_the_event_marked_processed(factory, deliver) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        pass

    response = deliver(factory.message("hello"))
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.status == Event.Status.PROCESSED
    assert event.processed_at is not None and event.processed_at >= event.received_at
    assert event.claimed_by == "" and event.claim_expires_at is None
    assert event.dispatch_attempts == 1
    [run] = runs_of(event.pk)
    assert run.handler == handler_path(greet)
    assert run.status == HandlerRun.Status.SUCCEEDED
    assert run.duration_ms is not None and run.duration_ms >= 0
    assert run.started_at >= event.received_at
    assert run.worker == worker_name()
    assert (run.error, run.traceback) == ("", "")


@pytest.mark.django_db
def test_a_failing_handler_is_recorded_and_stops_nothing(factory, deliver, caplog) -> None:
    order: list[str] = []

    @on_message(priority=1)
    def broken(message: MessageContext) -> None:
        order.append("broken")
        raise RuntimeError("database of orders is down")

    @on_message
    def fine(message: MessageContext) -> None:
        order.append("fine")

    response = deliver(factory.message("order 7"))  # still a 200
    assert response.json()["status"] == "accepted"
    assert order == ["broken", "fine"]
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.status == Event.Status.FAILED
    assert event.processed_at is not None
    assert "broken: RuntimeError: database of orders is down" in event.error
    failed, succeeded = runs_of(event.pk)
    assert failed.status == HandlerRun.Status.FAILED
    assert failed.error == "RuntimeError: database of orders is down"
    assert "Traceback (most recent call last)" in failed.traceback
    assert 'raise RuntimeError("database of orders is down")' in failed.traceback
    assert succeeded.status == HandlerRun.Status.SUCCEEDED
    assert "handler tests.test_dispatch" in caplog.text


@pytest.mark.django_db
def test_a_failing_handler_failed_receiver_changes_nothing(factory, deliver) -> None:
    @on_message
    def broken(message: MessageContext) -> None:
        raise ValueError("first")

    def also_broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("second")

    signals.handler_failed.connect(also_broken, weak=False)
    try:
        response = deliver(factory.message("x"))
    finally:
        signals.handler_failed.disconnect(also_broken)
    assert Event.objects.get(pk=response.json()["event_id"]).status == Event.Status.FAILED


@pytest.mark.django_db
def test_inline_dispatch_costs_six_queries_for_one_message_handler(
    factory, client, django_assert_num_queries
) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        pass

    event = store_only(client, factory.message("count me"))
    # claim, load event+portal, message+chat+author+bot, run insert, run update, finish.
    with django_assert_num_queries(6):
        event_stored(event)
    assert Event.objects.get(pk=event.pk).status == Event.Status.PROCESSED


@pytest.mark.django_db
def test_an_event_nobody_listens_to_costs_one_query(factory, client, django_assert_num_queries):
    event = store_only(client, factory.message("nobody listens"))
    with django_assert_num_queries(1):
        event_stored(event)
    assert Event.objects.get(pk=event.pk).status == Event.Status.PROCESSED
    assert not HandlerRun.objects.exists()


@pytest.mark.django_db
def test_errors_starting_handlers_never_reach_the_webhook(factory, deliver, settings, caplog):
    @on_message
    def greet(message: MessageContext) -> None:
        pass

    settings.IMBOT_DISPATCH_LEASE = "not a number"  # run_event itself fails
    response = deliver(factory.message("still fine"))
    assert response.json()["status"] == "accepted"
    assert Event.objects.get().status == Event.Status.RECEIVED  # left for a replay
    assert "could not be started" in caplog.text


@pytest.mark.django_db
def test_several_commands_in_one_event_are_run_under_their_own_keys(factory, deliver) -> None:
    seen: list[int] = []

    @on_command("echo")
    def echo(command: Any) -> None:
        seen.append(command.command_id)

    payload = factory.command("echo", "x", command_id=103)
    second = dict(payload["data"]["COMMAND"]["103"], COMMAND_ID="104")
    payload["data"]["COMMAND"]["104"] = second
    response = deliver(payload)
    assert seen == [103, 104]
    keys = [run.handler for run in runs_of(response.json()["event_id"])]
    assert keys == [f"{handler_path(echo)}[103]", f"{handler_path(echo)}[104]"]


# --------------------------------------------------------------------------- idempotency


@pytest.mark.django_db
def test_a_processed_event_is_not_run_again_unless_forced(factory, deliver) -> None:
    calls: list[int] = []

    @on_message
    def count(message: MessageContext) -> None:
        calls.append(message.event.pk)

    event_id = deliver(factory.message("once")).json()["event_id"]
    assert run_event(event_id).outcome is Outcome.ALREADY_DONE
    assert calls == [event_id]
    assert len(runs_of(event_id)) == 1

    forced = run_event(event_id, force=True)
    assert forced.outcome is Outcome.PROCESSED
    assert calls == [event_id, event_id]
    assert [run.status for run in runs_of(event_id)] == ["succeeded", "succeeded"]
    assert Event.objects.get(pk=event_id).dispatch_attempts == 2


@pytest.mark.django_db
def test_a_failed_event_is_final_until_forced(factory, deliver) -> None:
    state = {"broken": True}

    @on_message
    def flaky(message: MessageContext) -> None:
        if state["broken"]:
            raise RuntimeError("not yet")

    event_id = deliver(factory.message("retry me")).json()["event_id"]
    assert Event.objects.get(pk=event_id).status == Event.Status.FAILED
    state["broken"] = False
    assert run_event(event_id).outcome is Outcome.ALREADY_DONE
    assert run_event(event_id, force=True).outcome is Outcome.PROCESSED
    event = Event.objects.get(pk=event_id)
    assert (event.status, event.error) == (Event.Status.PROCESSED, "")


def _as_left_by_a_dead_worker(event: Event, *, runs: dict[str, tuple[str, bool]]) -> None:
    """The rows a worker killed mid-event leaves: its expired claim and its runs."""
    now = timezone.now()
    Event.objects.filter(pk=event.pk).update(
        claimed_by="gone-host:4242:0123456789ab",
        claim_expires_at=now - timedelta(seconds=1),
        dispatch_attempts=1,
    )
    for handler, (status, stopped) in runs.items():
        HandlerRun.objects.create(
            event=event,
            handler=handler,
            status=status,
            started_at=now - timedelta(seconds=30),
            worker="gone-host:4242",
            stopped=stopped,
        )


@pytest.mark.django_db
def test_redelivery_skips_finished_handlers_and_reruns_the_abandoned_one(factory, client):
    calls: list[str] = []

    @on_message(priority=1)
    def first(message: MessageContext) -> None:
        calls.append("first")

    @on_message
    def second(message: MessageContext) -> None:
        calls.append("second")

    event = store_only(client, factory.message("interrupted"))
    _as_left_by_a_dead_worker(
        event,
        runs={
            handler_path(first): (HandlerRun.Status.SUCCEEDED, False),
            handler_path(second): (HandlerRun.Status.RUNNING, False),
        },
    )
    result = run_event(event.pk)

    assert result.outcome is Outcome.PROCESSED
    assert calls == ["second"]
    runs = runs_of(event.pk)
    by_status = {(r.handler.rsplit(".", 1)[-1], r.status) for r in runs}
    assert by_status == {("first", "succeeded"), ("second", "failed"), ("second", "succeeded")}
    abandoned = next(r for r in runs if r.status == HandlerRun.Status.FAILED)
    assert abandoned.error == ABANDONED
    event.refresh_from_db()
    assert event.status == Event.Status.PROCESSED
    assert event.dispatch_attempts == 2


@pytest.mark.django_db
def test_redelivery_honours_a_stop_from_the_first_attempt(factory, client) -> None:
    calls: list[str] = []

    @on_message(priority=1)
    def gate(message: MessageContext) -> None:
        calls.append("gate")
        message.stop()

    @on_message
    def after(message: MessageContext) -> None:
        calls.append("after")

    event = store_only(client, factory.message("stopped before"))
    _as_left_by_a_dead_worker(event, runs={handler_path(gate): (HandlerRun.Status.SUCCEEDED, True)})
    assert run_event(event.pk).outcome is Outcome.PROCESSED
    assert calls == []


@pytest.mark.django_db
def test_a_live_claim_makes_others_back_off(factory, client) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        raise AssertionError("must not run while another process holds the event")

    event = store_only(client, factory.message("busy"))
    Event.objects.filter(pk=event.pk).update(
        claimed_by="other-host:1:abc", claim_expires_at=timezone.now() + timedelta(seconds=90)
    )
    result = run_event(event.pk)
    assert result.outcome is Outcome.BUSY
    assert result.retry_in is not None and 80 < result.retry_in <= 90
    assert not HandlerRun.objects.exists()
    assert Event.objects.get(pk=event.pk).claimed_by == "other-host:1:abc"


@pytest.mark.django_db
def test_a_claim_taken_over_mid_way_stops_this_pass(factory, client, settings) -> None:
    settings.IMBOT_DISPATCH_LEASE = 0  # renew before every handler
    calls: list[str] = []

    @on_message(priority=1)
    def first(message: MessageContext) -> None:
        calls.append("first")
        Event.objects.filter(pk=message.event.pk).update(claimed_by="thief:1:x")

    @on_message
    def second(message: MessageContext) -> None:
        calls.append("second")

    event = store_only(client, factory.message("contested"))
    result = run_event(event.pk)
    assert result.outcome is Outcome.CLAIM_LOST
    assert calls == ["first"]
    assert Event.objects.get(pk=event.pk).status == Event.Status.RECEIVED


@pytest.mark.django_db
def test_invalid_and_missing_events_are_not_run(factory, client) -> None:
    payload = factory.message("no dialog")
    del payload["data"]["PARAMS"]["DIALOG_ID"]
    response = post_event(client, payload)
    assert response.status_code == 400
    assert run_event(response.json()["event_id"]).outcome is Outcome.INVALID
    assert run_event(response.json()["event_id"], force=True).outcome is Outcome.INVALID
    assert run_event(10**9).outcome is Outcome.MISSING


@pytest.mark.django_db
def test_an_event_whose_payload_no_longer_parses_fails_with_the_reason(factory, client) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        raise AssertionError("cannot be given a context")

    event = store_only(client, factory.message("soon unreadable"))
    Event.objects.filter(pk=event.pk).update(payload={"event": "ONIMBOTMESSAGEADD", "data": {}})
    assert run_event(event.pk).outcome is Outcome.FAILED
    event.refresh_from_db()
    assert event.status == Event.Status.FAILED
    assert "no longer parses" in event.error and "PARAMS" in event.error


# --------------------------------------------------------------------------- many events at once


def _stored(client: Any, factory: EventFactory, count: int) -> list[int]:
    return [store_only(client, factory.message(f"batch {n}")).pk for n in range(count)]


def _queries_to_run(event_ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as captured:
        results = list(run_events(event_ids))
    assert [r.outcome for r in results] == [Outcome.PROCESSED] * len(event_ids)
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_run_events_costs_three_queries_per_event_and_three_per_batch(factory, client) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        pass

    few, many = _stored(client, factory, 3), _stored(client, factory, 12)
    # Per batch: claim, load events+portals, messages+chats+authors+bots.
    # Per event: run insert, run update, finish.
    assert _queries_to_run(few) == 3 + 3 * 3
    assert _queries_to_run(many) == 3 + 3 * 12
    assert HandlerRun.objects.filter(status="succeeded").count() == 15


@pytest.mark.django_db
def test_run_events_claims_a_batch_at_a_time(factory) -> None:
    portal = Portal.objects.get(member_id=factory.member_id)
    events = Event.objects.bulk_create(
        Event(portal=portal, name="ONNOBODYLISTENS", payload={}, dedup_key=str(n))
        for n in range(BATCH_SIZE + 1)
    )
    with CaptureQueriesContext(connection) as captured:
        results = list(run_events(e.pk for e in events))
    assert [r.outcome for r in results] == [Outcome.PROCESSED] * len(events)
    claims = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("UPDATE") and "dispatch_attempts" in q["sql"]
    ]
    assert len(claims) == 2


@pytest.mark.django_db
def test_run_events_gives_what_run_event_gives_event_by_event(factory, client) -> None:
    seen: list[str] = []

    @on_message
    def record(message: MessageContext) -> None:
        if message.text == "broken":
            raise RuntimeError("no")
        seen.append(message.text)

    fine = store_only(client, factory.message("fine"))
    broken = store_only(client, factory.message("broken"))
    done = store_only(client, factory.message("done before"))
    Event.objects.filter(pk=done.pk).update(status=Event.Status.PROCESSED)
    busy = store_only(client, factory.message("busy"))
    Event.objects.filter(pk=busy.pk).update(
        claimed_by="other-host:1:abc", claim_expires_at=timezone.now() + timedelta(seconds=90)
    )
    unreadable = store_only(client, factory.message("unreadable"))
    Event.objects.filter(pk=unreadable.pk).update(payload={"event": "ONIMBOTMESSAGEADD"})
    after = store_only(client, factory.message("after the unreadable one"))
    invalid = Event.objects.create(
        portal=fine.portal, name="ONIMBOTMESSAGEADD", status="invalid", payload={}, dedup_key="i"
    )
    ids = [fine.pk, broken.pk, done.pk, busy.pk, unreadable.pk, after.pk, invalid.pk, 10**9]

    results = list(run_events([*ids, fine.pk]))  # an id given twice is run once

    assert [r.event_id for r in results] == ids
    assert [r.outcome for r in results] == [
        Outcome.PROCESSED,
        Outcome.FAILED,
        Outcome.ALREADY_DONE,
        Outcome.BUSY,
        Outcome.FAILED,
        Outcome.PROCESSED,
        Outcome.INVALID,
        Outcome.MISSING,
    ]
    assert results[3].retry_in is not None and 80 < results[3].retry_in <= 90
    assert seen == ["fine", "after the unreadable one"]
    assert [run.status for run in results[1].runs] == [HandlerRun.Status.FAILED]
    unreadable.refresh_from_db()
    assert unreadable.status == Event.Status.FAILED and "no longer parses" in unreadable.error
    assert Event.objects.get(pk=busy.pk).claimed_by == "other-host:1:abc"
    for event_id in (fine.pk, broken.pk, after.pk):
        event = Event.objects.get(pk=event_id)
        assert (event.claimed_by, event.claim_expires_at, event.dispatch_attempts) == ("", None, 1)


@pytest.mark.django_db
def test_run_events_skips_finished_handlers_unless_forced(factory, client) -> None:
    calls: list[str] = []

    @on_message(priority=1)
    def first(message: MessageContext) -> None:
        calls.append("first")

    @on_message
    def second(message: MessageContext) -> None:
        calls.append("second")

    event = store_only(client, factory.message("interrupted"))
    _as_left_by_a_dead_worker(
        event,
        runs={
            handler_path(first): (HandlerRun.Status.SUCCEEDED, False),
            handler_path(second): (HandlerRun.Status.RUNNING, False),
        },
    )
    [result] = run_events([event.pk])
    assert result.outcome is Outcome.PROCESSED
    assert calls == ["second"]
    assert HandlerRun.objects.get(event=event, error=ABANDONED).handler == handler_path(second)

    assert [r.outcome for r in run_events([event.pk])] == [Outcome.ALREADY_DONE]
    [forced] = run_events([event.pk], force=True)
    assert forced.outcome is Outcome.PROCESSED
    assert calls == ["second", "first", "second"]


@pytest.mark.django_db
def test_run_events_leaves_an_event_whose_claim_was_taken_meanwhile(
    factory, client, settings
) -> None:
    settings.IMBOT_DISPATCH_LEASE = 0  # every claim is checked before its event starts
    calls: list[str] = []
    first, second = _stored(client, factory, 2)

    @on_message
    def take_the_next(message: MessageContext) -> None:
        calls.append(message.text)
        Event.objects.filter(pk=second).update(claimed_by="thief:1:x")

    results = list(run_events([first, second]))
    assert [r.outcome for r in results] == [Outcome.PROCESSED, Outcome.CLAIM_LOST]
    assert calls == ["batch 0"]
    event = Event.objects.get(pk=second)
    assert (event.status, event.claimed_by) == (Event.Status.RECEIVED, "thief:1:x")
    assert not HandlerRun.objects.filter(event_id=second).exists()


@pytest.mark.django_db
def test_run_events_releases_the_claims_it_did_not_get_to(factory, client, settings) -> None:
    @on_message
    def greet(message: MessageContext) -> None:
        pass

    ids = _stored(client, factory, 3)
    results = run_events(ids)
    assert next(results).outcome is Outcome.PROCESSED
    results.close()  # the caller stops: the two left are free again
    assert list(Event.objects.filter(pk__in=ids[1:]).values_list("claimed_by", "status")) == [
        ("", "received"),
        ("", "received"),
    ]

    settings.IMBOT_SENDER = "builtins.object"  # the bookkeeping itself fails
    with pytest.raises(TypeError, match="IMBOT_SENDER"):
        list(run_events(ids[1:]))
    assert list(Event.objects.filter(pk__in=ids[1:]).values_list("claimed_by", "status")) == [
        ("", "received"),
        ("", "received"),
    ]


@pytest.mark.django_db
def test_run_events_gives_each_context_its_own_message_row(factory, client) -> None:
    messages: list[Any] = []

    @router.on_event("ONIMBOTMESSAGEADD", "ONIMBOTMESSAGEUPDATE")
    def keep(event: MessageContext) -> None:
        messages.append(event.message)

    added = store_only(client, factory.message("before", message_id=4242))
    updated = store_only(client, factory.message_update(4242, "after"))
    assert [r.outcome for r in run_events([added.pk, updated.pk])] == [Outcome.PROCESSED] * 2
    first, second = messages
    assert first is not second
    assert first.pk == second.pk and first.message_id == 4242


# --------------------------------------------------------------------------- celery mode (sending)


@pytest.mark.django_db
def test_celery_mode_sends_one_task_with_only_the_event_id(factory, deliver, settings) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis broker")
    queue = f"imbot-test-send-{uuid.uuid4().hex[:8]}"
    settings.IMBOT_DISPATCH = "celery"
    settings.IMBOT_CELERY_QUEUE = queue
    ran: list[int] = []

    @on_message
    def inline_would_run(message: MessageContext) -> None:
        ran.append(message.event.pk)

    try:
        event_id = deliver(factory.message("to the queue")).json()["event_id"]
        messages = client.lrange(queue, 0, -1)
    finally:
        client.delete(queue)
    assert ran == []  # nothing ran in the web process
    assert Event.objects.get(pk=event_id).status == Event.Status.RECEIVED
    [raw] = messages
    message = json.loads(raw)
    assert message["headers"]["task"] == "imbot_app.run_event"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([event_id], {"force": False})


# --------------------------------------------------------------------------- start-up


def test_handler_modules_setting_is_imported(settings) -> None:
    sys.modules.pop("tests.sample_handlers", None)
    settings.IMBOT_HANDLER_MODULES = ["tests.sample_handlers"]
    try:
        ImbotAppConfig.import_handler_modules()
        assert [route.path for route in router.routes] == ["tests.sample_handlers.sample"]
    finally:
        sys.modules.pop("tests.sample_handlers", None)


def test_an_unknown_dispatch_mode_refuses_to_start(settings) -> None:
    settings.IMBOT_DISPATCH = "sometimes"
    with pytest.raises(ImproperlyConfigured, match="IMBOT_DISPATCH"):
        ImbotAppConfig.check_dispatch_mode()


def test_imbot_app_works_without_celery_installed() -> None:
    """A fresh interpreter where ``import celery`` fails: the project starts and dispatches."""
    code = """
import os, sys
sys.modules["celery"] = None  # as if not installed
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
import django
django.setup()
import imbot_app, imbot_app.dispatch.runner, imbot_app.web.views
from imbot_app import on_command
import project
assert not hasattr(project, "celery_app")
assert sys.modules["celery"] is None
print("ok")
"""
    env = {**os.environ, "IMBOT_DISPATCH": "inline"}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

    env["IMBOT_DISPATCH"] = "celery"
    refused = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "Celery is not installed" in refused.stderr
