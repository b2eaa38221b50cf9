"""Every event Bitrix24 delivered, and each handler that ran for it."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from imbot_app.models.portals import Portal


class Event(models.Model):
    """One delivery from Bitrix24, stored before anything acts on it.

    ``payload`` is the decoded body with every token replaced by :data:`REDACTED`.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed"
        INVALID = "invalid", "invalid"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=64)
    handler_id = models.BigIntegerField(null=True, blank=True)
    ts = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    payload = models.JSONField()
    dedup_key = models.CharField(max_length=255)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Who runs the event's handlers right now (host:pid:nonce) and until when that claim holds;
    # a claim whose holder died simply expires, so a redelivered task can take over.
    claimed_by = models.CharField(max_length=255, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # How many times handlers were started for this event (redeliveries and replays count).
    dispatch_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "dedup_key"], name="imbot_event_dedup"),
        ]
        indexes = [
            models.Index(fields=["name", "-received_at"], name="imbot_event_name"),
            models.Index(fields=["status", "-received_at"], name="imbot_event_status"),
            models.Index(fields=["-received_at"], name="imbot_event_received"),
            # The admin's portal filter, newest first.
            models.Index(fields=["portal", "-received_at"], name="imbot_event_portal"),
            # imbot_worker's queue: the events still waiting, oldest first.  Partial, so it
            # holds only the backlog, however big the table grows.
            models.Index(fields=["id"], name="imbot_event_waiting", condition=Q(status="received")),
        ]
        permissions = [("replay_event", "Can replay events (run their handlers again)")]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class HandlerRun(models.Model):
    """One handler function run for one event: who ran, how long, what failed."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="handler_runs")
    handler = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # host:pid of the process that ran it (the web process inline, a worker with Celery).
    worker = models.CharField(max_length=255, blank=True)
    # The handler asked that the handlers after it be skipped; a rerun honours it again.
    stopped = models.BooleanField(default=False)

    class Meta:
        ordering = ["event_id", "started_at", "id"]
        indexes = [
            models.Index(fields=["status", "-started_at"], name="imbot_run_status"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} for event {self.event_id}"
