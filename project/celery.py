"""The example project's Celery app (the standard Django pattern).

Run a worker with ``celery -A project worker -l info``; it reads ``CELERY_*`` settings
(``CELERY_BROKER_URL`` ...) from ``project/settings.py`` and finds ``imbot_app.dispatch.tasks``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
