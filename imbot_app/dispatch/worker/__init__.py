"""``imbot_worker``: handlers off the request path, with the Event table as the queue.

With ``IMBOT_DISPATCH = "worker"`` the endpoint only stores the event (and, on PostgreSQL,
sends a ``NOTIFY`` once it is committed); ``manage.py imbot_worker`` runs the handlers.
Nothing but the database is needed, and nothing can be stranded: an event is waiting for
exactly as long as it is ``received`` in the table.

* :mod:`.queue`: taking a batch of waiting events (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL), the notification, the backlog figures;
* :mod:`.recorder`: HandlerRun rows and final statuses written per batch, not per handler;
* :mod:`.listen`: PostgreSQL ``LISTEN``, so an idle worker wakes within milliseconds;
* :mod:`.runner` and :mod:`.loop`: the threads that run batches, and the process around
  them (heartbeat, claim renewal, signals, status lines);
* :mod:`.sweep`: Celery mode's safety net, sending stranded events to Celery again.

This package imports nothing at import time, so :mod:`imbot_app.dispatch.runner` can reach
:func:`.queue.notify_workers` without a cycle.
"""
