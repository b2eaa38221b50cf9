"""System checks for settings that would leave a production bot open or broken."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from .conf import imbot_settings


@register(Tags.security)
def check_install_verification(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not imbot_settings.VERIFY_INSTALL and not settings.DEBUG:
        messages.append(
            Warning(
                "IMBOT_VERIFY_INSTALL is off with DEBUG off: the first ONAPPINSTALL for any "
                "member_id is trusted without asking Bitrix24, so anyone who can reach the "
                "endpoint can register a portal.",
                hint="Set IMBOT_VERIFY_INSTALL=True and IMBOT_CLIENT_ID to your application's "
                "client id.",
                id="imbot_app.W001",
            )
        )
    if imbot_settings.VERIFY_INSTALL and not imbot_settings.CLIENT_ID:
        messages.append(
            Warning(
                "IMBOT_VERIFY_INSTALL is on but IMBOT_CLIENT_ID is empty: every install will "
                "be refused, because app.info's answer cannot be matched to this application.",
                hint="Set IMBOT_CLIENT_ID to the client id from your Bitrix24 application.",
                id="imbot_app.W002",
            )
        )
    return messages
