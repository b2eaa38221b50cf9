"""Where Celery's ``autodiscover_tasks()`` looks (``<app>.tasks``): the task lives in dispatch.

Importing this module registers :func:`imbot_app.dispatch.tasks.run_event_task`; nothing in
imbot_app imports it, so the app works without Celery installed.
"""

from imbot_app.dispatch.tasks import requeue_stranded_task, run_event_task

__all__ = ["requeue_stranded_task", "run_event_task"]
