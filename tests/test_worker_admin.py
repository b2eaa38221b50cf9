"""The admin overview's queue: events waiting, the oldest wait, events/min, worker heartbeats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from imbot_app.models import Event, WorkerHeartbeat
from imbot_app.testing import post_event

pytestmark = pytest.mark.django_db


def test_the_overview_shows_the_backlog_and_each_worker(admin_client, client, factory, settings):
    settings.IMBOT_DISPATCH = "worker"  # stored, not run: they wait
    for n in range(3):
        assert post_event(client, factory.message(f"waiting {n}")).status_code == 200
    Event.objects.update(received_at=timezone.now() - timedelta(seconds=90))
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        name="alpha:11", host="alpha", pid=11, concurrency=4, started_at=now,
        last_seen=now, events_done=1234, events_failed=5, per_minute=600,
    )  # fmt: skip
    WorkerHeartbeat.objects.create(
        name="beta:22", host="beta", pid=22, started_at=now - timedelta(hours=2),
        last_seen=now - timedelta(minutes=10), events_done=7, per_minute=50,
    )  # fmt: skip

    page = admin_client.get(reverse("admin:app_list", args=["imbot_app"])).content.decode()

    assert '<strong class="imbot-waiting">3</strong>' in page
    assert "events waiting for handlers, the oldest for" in page
    assert "<strong>600</strong> events/min" in page  # the live worker only
    assert "<code>alpha:11</code>" in page and "1234" in page
    assert "<code>beta:22</code>" in page and "(gone)" in page


def test_without_workers_the_overview_says_so(admin_client) -> None:
    page = admin_client.get(reverse("admin:app_list", args=["imbot_app"])).content.decode()
    assert "no imbot_worker running" in page
    assert "<strong>0</strong>" in page


def test_the_backlog_count_is_bounded(client, factory, settings) -> None:
    from imbot_app.dispatch.worker.queue import backlog

    settings.IMBOT_DISPATCH = "worker"
    for n in range(3):
        assert post_event(client, factory.message(f"waiting {n}")).status_code == 200
    assert backlog().describe().startswith("waiting 3, oldest wait ")
    bounded = backlog(cap=2)
    assert (bounded.waiting, bounded.waiting_text) == (3, "2+")
    assert bounded.describe().startswith("waiting 2+, ")
