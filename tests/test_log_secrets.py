""" "Never logged" at every level: the HTTP library's DEBUG lines carry no token or webhook code."""

from __future__ import annotations

import logging
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from imbot_app.logsafe import redact_url_secrets
from imbot_app.models import Credential, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.testing import EventFactory, FakeBitrix24

pytestmark = pytest.mark.django_db

CLIENT_ID = "k3s9d0f8g7h6j5k4l3z2x1c0v9b8n7m6q5w4e3r2"


class Everything(logging.Handler):
    """Keeps every record that reaches the root logger, formatted as a handler would."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def root_at_debug() -> Any:
    root = logging.getLogger()
    handler, level = Everything(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_refresh_and_webhook_calls_log_no_secret_at_debug(root_at_debug, settings) -> None:
    with FakeBitrix24() as fake:
        settings.IMBOT_CLIENT_ID = fake.client_id
        settings.IMBOT_CLIENT_SECRET = fake.client_secret
        settings.IMBOT_OAUTH_SERVERS = [fake.rest_url]
        settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
        factory = EventFactory.connected(fake)
        spent = Credential.objects.get(user_id=factory.bot_id)
        fake.expire()
        RestClient(Portal.objects.get(), user_id=factory.bot_id).call("imbot.bot.list")
        assert fake.refreshes == 1
        fresh = Credential.objects.get(user_id=factory.bot_id)

        member_id = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        url = fake.add_webhook(member_id, user_id=1, domain="127.0.0.1")
        settings.IMBOT_WEBHOOK_URL = url
        settings.IMBOT_WEBHOOK_CLIENT_ID = CLIENT_ID
        settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
        call_command("imbot_register", stdout=StringIO())
        assert fake.calls_to("imbot.register")
        code = re.search(r"/rest/1/([0-9a-f]+)/", url).group(1)  # type: ignore[union-attr]

    lines = root_at_debug.lines
    # The HTTP library did log its request lines (so the assertion below means something).
    assert any("urllib3.connectionpool" in line and "/oauth/token/" in line for line in lines)
    assert any("urllib3.connectionpool" in line and "/rest/1/" in line for line in lines)
    secrets = {
        fake.client_secret,
        spent.access_token,
        spent.refresh_token,
        fresh.access_token,
        fresh.refresh_token,
        code,
        CLIENT_ID,
    }
    leaks = [(s, line) for line in lines for s in secrets if s in line]
    assert leaks == []


def test_the_urllib3_logger_alone_at_debug_is_filtered_too(settings) -> None:
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    urllib3_logger = logging.getLogger("urllib3")
    urllib3_logger.addHandler(handler)
    urllib3_logger.setLevel(logging.DEBUG)
    try:
        with FakeBitrix24() as fake:
            settings.IMBOT_CLIENT_ID = fake.client_id
            settings.IMBOT_CLIENT_SECRET = fake.client_secret
            settings.IMBOT_OAUTH_SERVERS = [fake.rest_url]
            factory = EventFactory.connected(fake)
            refresh = Credential.objects.get(user_id=factory.bot_id).refresh_token
            fake.expire()
            RestClient(Portal.objects.get(), user_id=factory.bot_id).call("imbot.bot.list")
    finally:
        urllib3_logger.removeHandler(handler)
        urllib3_logger.setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert "/oauth/token/?grant_type=" in text
    assert refresh not in text and fake.client_secret not in text


def test_redaction_keeps_names_and_drops_values() -> None:
    line = (
        'https://oauth.bitrix.info:443 "GET /oauth/token/?grant_type=refresh_token'
        '&client_id=app.1&client_secret=S3CR3T&refresh_token=R3FR3SH HTTP/1.1" 200 512'
    )
    assert redact_url_secrets(line) == (
        'https://oauth.bitrix.info:443 "GET /oauth/token/?grant_type=[redacted]'
        '&client_id=[redacted]&client_secret=[redacted]&refresh_token=[redacted] HTTP/1.1" 200 512'
    )
    hook = 'https://x.bitrix24.com:443 "POST /rest/1/abcd1234efgh/imbot.message.add HTTP/1.1" 200'
    assert "abcd1234efgh" not in redact_url_secrets(hook)
    assert "/rest/1/[redacted]/imbot.message.add" in redact_url_secrets(hook)
    plain = 'https://x.bitrix24.com:443 "POST /rest/imbot.message.add HTTP/1.1" 200 77'
    assert redact_url_secrets(plain) == plain
