"""The sealing migration: rows written in plaintext before it read back sealed and digested."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from imbot_app import sealing
from imbot_app.models import Credential, Portal

BEFORE = [("imbot_app", "0010_portal_webhook")]
AFTER = [("imbot_app", "0011_sealed_secrets")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_plaintext_rows_are_sealed_by_the_migration() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("imbot_app")
    old_apps = migrate(BEFORE).loader.project_state(BEFORE).apps
    try:
        OldPortal = old_apps.get_model("imbot_app", "Portal")
        OldCredential = old_apps.get_model("imbot_app", "Credential")
        portal = OldPortal.objects.create(member_id="m1", application_token="app-token-plain")
        OldPortal.objects.create(member_id="m2", application_token="")
        OldCredential.objects.create(
            portal=portal, user_id=1, access_token="access-plain", refresh_token="refresh-plain"
        )
        OldCredential.objects.create(portal=portal, user_id=2, access_token="bot-access")

        migrate(AFTER)

        with connection.cursor() as cursor:
            cursor.execute("SELECT access_token, refresh_token FROM imbot_app_credential")
            raw = [value for row in cursor.fetchall() for value in row]
            cursor.execute("SELECT member_id, application_token FROM imbot_app_portal")
            raw_portals = dict(cursor.fetchall())
        assert all(v.startswith("fernet:") for v in raw if v), raw
        assert not any("plain" in v or "bot-access" in v for v in raw)
        assert raw_portals["m1"].startswith("hmac:") and raw_portals["m2"] == ""
    finally:
        migrate(latest)

    by_user = {c.user_id: c for c in Credential.objects.all()}
    assert (by_user[1].access_token, by_user[1].refresh_token) == ("access-plain", "refresh-plain")
    assert (by_user[2].access_token, by_user[2].refresh_token) == ("bot-access", "")
    stored = Portal.objects.get(member_id="m1").application_token
    assert sealing.token_matches(stored, "app-token-plain")
    assert not sealing.token_matches(stored, "app-token-other")


@pytest.mark.django_db(transaction=True)
def test_the_migration_reverses_to_plaintext_tokens() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("imbot_app")
    portal = Portal.objects.create(member_id="m3")
    Credential.objects.create(portal=portal, user_id=1, access_token="acc", refresh_token="ref")
    try:
        migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT access_token, refresh_token FROM imbot_app_credential")
            assert cursor.fetchall() == [("acc", "ref")]
    finally:
        migrate(latest)
    assert Credential.objects.get().access_token == "acc"
