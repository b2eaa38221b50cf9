"""The example project.  Its Celery app is loaded here when Celery is installed, so that
``@shared_task`` tasks (imbot_app's included) are sent through it; without Celery the project
runs with ``IMBOT_DISPATCH = "inline"`` and nothing else changes.
"""

from importlib.util import find_spec

if find_spec("celery") is not None:
    from .celery import app as celery_app

    __all__ = ["celery_app"]
