"""Replaying stored events: the shared loop and ``manage.py imbot_replay``."""

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

from imbot_app.dispatch.replay import Selection, iter_event_ids, replay_chunk, replay_event
from imbot_app.models import Event, HandlerRun, Message, Portal
from imbot_app.testing import EventFactory, FakeBitrix24, post_event
from tests.admin_scenes import Switch, connect_handlers, connected_portal, send_replies_to, talk

FLAKY = "tests.admin_scenes.connect_handlers.<locals>.flaky"
ANSWER = "tests.admin_scenes.connect_handlers.<locals>.answer"


@pytest.fixture
def switch(isolated_routes: Any) -> Switch:
    switch = Switch()
    connect_handlers(switch)
    return switch


@pytest.fixture
def live(db: None, settings: Any, fake_b24: FakeBitrix24, switch: Switch) -> EventFactory:
    send_replies_to(fake_b24, settings)
    return connected_portal(fake_b24)


def replay(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("imbot_replay", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def replay_failing(*args: str) -> tuple[str, str, CommandError]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("imbot_replay", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), caught.value


def runs(event: Event) -> list[tuple[str, str]]:
    return list(
        HandlerRun.objects.filter(event=event).order_by("id").values_list("handler", "status")
    )


def status(event: Event) -> str:
    event.refresh_from_db()
    return event.status


# --------------------------------------------------------------------------- the loop


def test_resume_reruns_only_the_failed_handler(live, deliver, switch, fake_b24) -> None:
    switch.broken = True
    [event] = talk(live, deliver, ["please fail"])
    assert status(event) == "failed"
    assert len(fake_b24.calls_to("imbot.message.add")) == 1
    switch.broken = False

    result = replay_event(event.pk, force=False)

    assert (result.status, result.detail) == ("processed", "")
    assert status(event) == "processed"
    # The answer was not sent twice: only the failed handler ran again.
    assert len(fake_b24.calls_to("imbot.message.add")) == 1
    assert runs(event) == [(ANSWER, "succeeded"), (FLAKY, "failed"), (FLAKY, "succeeded")]


def test_force_reruns_every_handler(live, deliver, switch, fake_b24) -> None:
    [event] = talk(live, deliver, ["please fail"])  # not broken: processed
    result = replay_event(event.pk, force=True)
    assert result.status == "processed"
    assert len(fake_b24.calls_to("imbot.message.add")) == 2
    assert [h for h, _ in runs(event)] == [ANSWER, FLAKY, ANSWER, FLAKY]


def test_processed_events_are_skipped_unless_forced(live, deliver) -> None:
    [event] = talk(live, deliver, ["hi"])
    result = replay_event(event.pk, force=False)
    assert (result.status, result.detail) == (
        "skipped",
        "already processed (use force to run it again)",
    )
    assert len(runs(event)) == 1


def test_received_events_run_for_the_first_time(live, client) -> None:
    """Stored, but their handlers never started (say the process died after the commit)."""
    response = post_event(client, live.message("never dispatched"))  # no on-commit here
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.status == "received"
    assert replay_event(event.pk, force=False).status == "processed"
    assert Message.objects.filter(direction="out", text="you said: never dispatched").exists()


def test_an_event_another_process_runs_is_skipped(live, deliver) -> None:
    [event] = talk(live, deliver, ["busy"])
    Event.objects.filter(pk=event.pk).update(
        status="failed",
        claimed_by="elsewhere:1:x",
        claim_expires_at=timezone.now() + timedelta(minutes=5),
    )
    for force in (False, True):
        result = replay_event(event.pk, force=force)
        assert (result.status, result.detail) == ("skipped", "being run by another process")
    assert status(event) == "failed"


def test_invalid_and_missing_events_are_skipped(factory) -> None:
    portal = Portal.objects.get(member_id=factory.member_id)
    invalid = Event.objects.create(
        portal=portal, name="ONIMBOTMESSAGEADD", status="invalid", payload={}, dedup_key="i"
    )
    assert replay_event(invalid.pk, force=True).detail == "invalid payload"
    assert replay_event(10**9, force=True).detail == "no such event"


def test_a_chunk_is_replayed_as_replay_event_would(live, deliver, switch, fake_b24) -> None:
    switch.broken = True
    failed = talk(live, deliver, ["fail a", "fail b"])
    switch.broken = False
    [done] = talk(live, deliver, ["hi"])
    [busy] = talk(live, deliver, ["fail busy"])
    Event.objects.filter(pk=busy.pk).update(
        status="failed",
        claimed_by="elsewhere:1:x",
        claim_expires_at=timezone.now() + timedelta(minutes=5),
    )
    answers = len(fake_b24.calls_to("imbot.message.add"))
    chunk = [(e.pk, status(e)) for e in [*failed, done, busy]] + [(10**9, None)]

    results = list(replay_chunk(chunk, force=False))

    assert [(r.event_id, r.status, r.detail) for r in results] == [
        (failed[0].pk, "processed", ""),
        (failed[1].pk, "processed", ""),
        (done.pk, "skipped", "already processed (use force to run it again)"),
        (busy.pk, "skipped", "being run by another process"),
        (10**9, "skipped", "no such event"),
    ]
    # Only the failed handler ran again: nobody was answered twice.
    assert len(fake_b24.calls_to("imbot.message.add")) == answers
    assert runs(failed[0]) == [(ANSWER, "succeeded"), (FLAKY, "failed"), (FLAKY, "succeeded")]
    assert status(busy) == "failed" and len(runs(done)) == 1


def _queries_to_replay(events: list[Event]) -> int:
    with CaptureQueriesContext(connection) as captured:
        results = list(replay_chunk([(e.pk, "failed") for e in events], force=False))
    assert [r.status for r in results] == ["processed"] * len(events)
    return len(captured.captured_queries)


def test_a_chunk_costs_a_fixed_number_of_queries_per_event(live, deliver, switch) -> None:
    switch.broken = True
    few = talk(live, deliver, [f"fail {n}" for n in range(2)])
    many = talk(live, deliver, [f"fail {n}" for n in range(10)])
    switch.broken = False
    # Per batch: reopen, claim, load events+portals, messages.
    # Per event: abandon stale runs, read succeeded ones, run insert, run update, finish.
    assert _queries_to_replay(few) == 4 + 5 * 2
    assert _queries_to_replay(many) == 4 + 5 * 10


def test_an_error_outside_the_handlers_fails_that_event_and_the_chunk_goes_on(
    live, client, settings
) -> None:
    events = [
        Event.objects.get(pk=post_event(client, live.message(f"never run {n}")).json()["event_id"])
        for n in range(3)
    ]
    settings.IMBOT_SENDER = "builtins.object"
    results = list(replay_chunk([(e.pk, "received") for e in events], force=False))
    assert [r.event_id for r in results] == [e.pk for e in events]
    assert all(r.status == "failed" and "IMBOT_SENDER" in r.detail for r in results)
    for event in events:
        event.refresh_from_db()
        assert (event.status, event.claimed_by, event.claim_expires_at) == ("received", "", None)


def test_keyset_chunks_read_ids_in_order_without_repeats(factory) -> None:
    portal = Portal.objects.get(member_id=factory.member_id)
    events = [
        Event.objects.create(portal=portal, name="X", payload={}, dedup_key=str(n))
        for n in range(5)
    ]
    selection = Selection(statuses=("received",))
    seen: list[list[int]] = []
    with CaptureQueriesContext(connection) as captured:
        for chunk in iter_event_ids(selection.queryset(), chunk_size=2):
            seen.append(chunk)
            # Rows leaving the selection while it is read are not an issue for keyset paging.
            Event.objects.filter(pk__in=chunk).update(status="processed")
    ids = [e.pk for e in events]
    assert seen == [ids[0:2], ids[2:4], ids[4:5]]
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 4  # three chunks and the empty read that ends it
    assert all("LIMIT 2" in sql and '"id" >' in sql for sql in reads)


# --------------------------------------------------------------------------- the command


def test_command_retries_failed_events_and_reports(live, deliver, switch) -> None:
    switch.broken = True
    failed = talk(live, deliver, ["fail a", "fail b"])
    switch.broken = False
    [fine] = talk(live, deliver, ["fine"])

    out, err = replay()

    assert "Replayed 2 events: processed 2, failed 0, skipped 0" in out
    assert "replay [" in err and "2/2 100%" in err
    assert [status(e) for e in failed] == ["processed", "processed"]
    assert len(runs(fine)) == 1  # processed: not touched


def test_command_counts_failures_goes_on_and_exits_non_zero(live, deliver, switch) -> None:
    switch.broken = True
    first, second = talk(live, deliver, ["fail a", "fail b"])
    events_before = HandlerRun.objects.count()

    out, err, error = replay_failing("--status", "failed")

    assert error.returncode == 1
    assert str(error) == "2 events failed"
    assert "Replayed 2 events: processed 0, failed 2, skipped 0" in out
    assert f"event {first.pk} failed: {FLAKY}: RuntimeError: the weather service is down" in err
    assert f"event {second.pk} failed" in err
    assert HandlerRun.objects.count() == events_before + 2  # both were tried


def test_command_force_and_ids(live, deliver, fake_b24) -> None:
    first, second, third = talk(live, deliver, ["one", "two", "three"])
    out, _ = replay("--id", str(first.pk), "--id", str(third.pk))
    assert "processed 0, failed 0, skipped 2 (2 already processed" in out
    out, _ = replay("--id", str(first.pk), "--id", str(third.pk), "--force")
    assert "Replayed 2 events: processed 2, failed 0, skipped 0" in out
    assert len(runs(first)) == 2 and len(runs(second)) == 1


def test_command_filters(live, deliver, fake_b24, switch) -> None:
    switch.broken = True
    old, recent = talk(live, deliver, ["fail old", "fail recent"])
    [command] = talk(live, deliver, ["/echo x"])
    other = connected_portal(fake_b24)
    [elsewhere] = talk(other, deliver, ["fail elsewhere"])
    Event.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=3))
    switch.broken = False

    out, _ = replay("--since", "1d", "--portal", live.member_id, "--dry-run")
    assert f"#{recent.pk} " in out and f"#{old.pk} " not in out and f"#{elsewhere.pk} " not in out
    assert f"#{command.pk} " not in out  # processed, not forced

    out, _ = replay("--until", "2d", "--dry-run")
    assert f"#{old.pk} " in out and f"#{recent.pk} " not in out

    day = (timezone.localdate() - timedelta(days=3)).isoformat()
    out, _ = replay("--since", day, "--until", "2d", "--dry-run")
    assert f"#{old.pk} " in out

    out, _ = replay("--event", "onimcommandadd", "--force", "--dry-run")
    assert f"#{command.pk} " in out and f"#{recent.pk} " not in out

    out, _ = replay("--status", "failed", "--portal", other.member_id)
    assert "Replayed 1 event: processed 1" in out
    assert status(elsewhere) == "processed" and status(recent) == "failed"


def test_dry_run_lists_events_and_handlers_and_runs_nothing(live, deliver, switch) -> None:
    switch.broken = True
    [failed] = talk(live, deliver, ["please fail"])
    [command] = talk(live, deliver, ["/echo hi"])
    switch.broken = False
    before = HandlerRun.objects.count()

    out, err = replay("--dry-run", "--force")

    assert f"#{failed.pk} ONIMBOTMESSAGEADD failed" in out
    assert f"runs {ANSWER}, {FLAKY}" in out  # priority order, both match "please fail"
    assert f"#{command.pk} ONIMCOMMANDADD processed" in out
    assert "runs tests.admin_scenes.connect_handlers.<locals>.echo" in out
    assert "Dry run: 2 events would run, 0 would be skipped" in out
    assert err == ""
    assert HandlerRun.objects.count() == before
    assert status(failed) == "failed"


def test_dry_run_names_what_would_be_skipped(live, deliver) -> None:
    [event] = talk(live, deliver, ["hi"])
    out, _ = replay("--dry-run", "--id", str(event.pk))
    assert f"#{event.pk} ONIMBOTMESSAGEADD processed" in out
    assert "skip, already processed (use force to run it again)" in out


def test_bad_dates_are_refused() -> None:
    with pytest.raises(CommandError, match="neither a duration"):
        call_command("imbot_replay", "--since", "yesterday-ish")


def test_chunked_command_replays_everything(live, deliver, switch) -> None:
    switch.broken = True
    failed = talk(live, deliver, [f"fail {n}" for n in range(5)])
    switch.broken = False
    out, _ = replay("--chunk-size", "2", "--verbosity", "2")
    assert "Replayed 5 events: processed 5" in out
    assert all(f"event {e.pk} processed" in out for e in failed)
