"""The imbot_worker processes, as each last reported itself."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """One ``imbot_worker`` process, as it last reported itself (for the admin overview).

    Written every few seconds by the worker; a row whose ``last_seen`` is old belongs to a
    worker that stopped or died (its claims expire and other workers take its events over).
    """

    name = models.CharField(max_length=255, unique=True)  # host:pid
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    events_done = models.PositiveBigIntegerField(default=0)
    events_failed = models.PositiveBigIntegerField(default=0)
    # Events finished over the last minute, as the worker counted them.
    per_minute = models.PositiveIntegerField(default=0)
    stopped = models.BooleanField(default=False)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return self.name
