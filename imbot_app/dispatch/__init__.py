"""Dispatch: from a stored event to the user's handlers (layer 5).

Owns claims and leases (``claims``), the runner (``runner``: ``run_event``/``run_events``), the
on-commit hook that picks inline or Celery (``hooks``), routing decorators (``routing``),
context objects rebuilt from the database (``context``, ``loading``), the Celery task
(``tasks``) and replay (``replay``).

May import: layer 1, ``imbot_app.protocol``, ``outbound`` and ``inbound``; never ``lifecycle``,
the entry points or ``admin``.  This ``__init__`` imports nothing, so ``import imbot_app`` stays
cheap.
"""
