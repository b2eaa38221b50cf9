"""Settings for bench/worker.py's webhook leg: the example project's, with the floor's URLs
(``DJANGO_SETTINGS_MODULE=bench.worker_floor``; see bench/worker_floor_urls.py)."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.worker_floor_urls"
