# imbot_app: paste at the end of the settings.py that `django-admin startproject` wrote.
import os

INSTALLED_APPS += ["rest_framework", "imbot_app", "weather"]  # "weather": your app

# Your Bitrix24 application's credentials (Developer resources > Other > Local application).
IMBOT_CLIENT_ID = os.environ.get("IMBOT_CLIENT_ID", "")
IMBOT_CLIENT_SECRET = os.environ.get("IMBOT_CLIENT_SECRET", "")
# Keys that seal the OAuth tokens at rest (newest first; keep old ones until
# `manage.py imbot_rotate_keys` has re-sealed everything). Comma-separated in the environment.
if os.environ.get("IMBOT_ENCRYPTION_KEYS"):
    IMBOT_ENCRYPTION_KEYS = os.environ["IMBOT_ENCRYPTION_KEYS"].split(",")
# The public HTTPS address Bitrix24 reaches this site at (in development: a tunnel's address).
IMBOT_PUBLIC_URL = os.environ.get("IMBOT_PUBLIC_URL", "")
# The bots registered on every portal that installs the application, with their commands.
IMBOT_BOTS = [
    {
        "code": "weatherbot",
        "name": "Weather bot",
        "commands": [
            {"command": "weather", "title": "The weather in a city", "params": "city"},
        ],
    },
]
# Behind a proxy, the admin's CSS and JavaScript are served from here (`collectstatic`).
STATIC_ROOT = BASE_DIR / "staticfiles"
