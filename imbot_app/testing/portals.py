"""The test kit's portals in the database: stored as installed, or connected to a fake.

What :meth:`EventFactory.installed` and :meth:`EventFactory.connected` store, so tests can start
from an installed portal without an ONAPPINSTALL round trip.  Models are imported when called,
so importing :mod:`imbot_app.testing` needs no configured Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class EventFactory(Protocol):
    """What is read of :class:`imbot_app.testing.EventFactory` here."""

    member_id: str
    application_token: str
    domain: str
    server_endpoint: str
    user_id: int
    bot_id: int
    bot_code: str

    @property
    def client_endpoint(self) -> str: ...


def store_portal(factory: EventFactory) -> Any:
    """The factory's Portal row, created or updated as installed."""
    from imbot_app.models import Portal

    portal, _ = Portal.objects.update_or_create(
        member_id=factory.member_id,
        defaults={
            "application_token": factory.application_token,
            "domain": factory.domain,
            "client_endpoint": factory.client_endpoint,
            "server_endpoint": factory.server_endpoint,
            "status": Portal.Status.INSTALLED,
        },
    )
    return portal


def connect_portal(factory: EventFactory, fake: Any, commands: Mapping[str, int]) -> None:
    """Store the factory's portal on ``fake``: installer and bot tokens, the bot, its commands."""
    from imbot_app.models import Credential

    portal = store_portal(factory)
    portal.installer_user_id = factory.user_id
    portal.save(update_fields=["installer_user_id"])
    for user_id in (factory.user_id, factory.bot_id):
        access, refresh = fake.issue_tokens(factory.member_id, user_id, domain=factory.domain)
        Credential.objects.update_or_create(
            portal=portal,
            user_id=user_id,
            defaults={"access_token": access, "refresh_token": refresh, "scope": "imbot"},
        )
    fake.add_bot(factory.member_id, factory.bot_id, factory.bot_code)
    for word, command_id in commands.items():
        fake.add_command(factory.member_id, factory.bot_id, word, command_id)
