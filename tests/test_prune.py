"""``manage.py imbot_prune``: old events and their runs go, the history stays."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imbot_app.management.retention import expired_events, prune_events
from imbot_app.models import Chat, CommandInvocation, Event, HandlerRun, Message
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.admin_scenes import Switch, connect_handlers, connected_portal, send_replies_to, talk


@pytest.fixture
def switch(isolated_routes: Any) -> Switch:
    switch = Switch()
    connect_handlers(switch)
    return switch


@pytest.fixture
def live(db: None, settings: Any, fake_b24: FakeBitrix24, switch: Switch) -> EventFactory:
    send_replies_to(fake_b24, settings)
    return connected_portal(fake_b24)


def age(events: list[Event], days: int) -> None:
    Event.objects.filter(pk__in=[e.pk for e in events]).update(
        received_at=timezone.now() - timedelta(days=days)
    )


def prune(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("imbot_prune", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_old_events_and_their_runs_go_history_stays(live, deliver, switch) -> None:
    switch.broken = True
    old = talk(live, deliver, ["hello", "/echo hi", "please fail"], chat_id=9)
    recent = talk(live, deliver, ["still here"], chat_id=9)
    age(old, 40)
    messages_before = Message.objects.count()

    out, err = prune("--older-than", "30d")

    assert "Deleted 3 events received before" in out and "and 4 handler runs" in out
    assert "prune [" in err and "3/3 100%" in err
    assert set(Event.objects.values_list("pk", flat=True)) == {recent[0].pk}
    assert not HandlerRun.objects.filter(event_id__in=[e.pk for e in old]).exists()
    # Messages, invocations and chats stay, detached from the deleted events.
    assert Message.objects.count() == messages_before
    assert Message.objects.filter(event__isnull=True).count() == 6  # 3 in, 3 answers
    invocation = CommandInvocation.objects.get()
    assert invocation.event_id is None and invocation.params == "hi"
    assert Chat.objects.filter(dialog_id="chat9").exists()


def test_keep_failed(live, deliver, switch) -> None:
    switch.broken = True
    failed, fine = talk(live, deliver, ["please fail", "hello"])
    age([failed, fine], 40)
    out, _ = prune("--older-than", "30d", "--keep-failed")
    assert "Deleted 1 event received" in out
    assert list(Event.objects.values_list("pk", flat=True)) == [failed.pk]


def test_dry_run_counts_and_deletes_nothing(live, deliver, switch) -> None:
    switch.broken = True
    events = talk(live, deliver, ["please fail", "hello", "hi"])
    age(events, 10)
    out, err = prune("--older-than", "1w", "--dry-run")
    assert "Dry run: would delete 3 events received before" in out
    assert "(1 failed, 2 processed) and their 4 handler runs" in out
    assert err == ""
    assert Event.objects.count() == 3 and HandlerRun.objects.count() == 4
    out, _ = prune("--older-than", "11d", "--dry-run")
    assert "would delete 0 events" in out


def test_deletes_in_batches_with_a_fixed_number_of_queries_each(live, deliver) -> None:
    events = talk(live, deliver, [f"m{n}" for n in range(8)])
    age(events, 40)
    cutoff = timezone.now() - timedelta(days=30)

    with CaptureQueriesContext(connection) as four_batches:
        summary = prune_events(expired_events(cutoff), batch_size=2)
    assert (summary.events, summary.handler_runs) == (8, 8)

    events = talk(live, deliver, [f"n{n}" for n in range(16)])
    age(events, 40)
    with CaptureQueriesContext(connection) as four_bigger_batches:
        summary = prune_events(expired_events(cutoff), batch_size=4)
    assert summary.events == 16
    # Twice the events in as many batches: the same statements, none per event.
    assert len(four_bigger_batches.captured_queries) == len(four_batches.captured_queries)


def test_batch_size_option_and_quiet_mode(live, deliver) -> None:
    events = talk(live, deliver, [f"m{n}" for n in range(5)])
    age(events, 40)
    out, err = prune("--older-than", "30d", "--batch-size", "2", "--verbosity", "0")
    assert "Deleted 5 events" in out and err == ""
    assert not Event.objects.exists()


def test_age_is_required_and_checked(db) -> None:
    with pytest.raises(CommandError):
        call_command("imbot_prune")
    with pytest.raises(CommandError, match="not a duration"):
        call_command("imbot_prune", "--older-than", "a month")
