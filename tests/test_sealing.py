"""Secrets at rest: sealed tokens, digested application tokens, the migration, key rotation."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imbot_app import sealing
from imbot_app.models import Credential, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

pytestmark = pytest.mark.django_db

KEY_A = "a" * 20 + "-first-key-of-the-test-run"
KEY_B = "b" * 20 + "-second-key-of-the-test-run"


def raw_rows(table: str) -> list[tuple[Any, ...]]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {quote(table)}")  # noqa: S608
        return list(cursor.fetchall())


def every_cell() -> list[tuple[str, str]]:
    """(table, cell as text) of every column of every row of every table in the database."""
    cells = []
    for table in connection.introspection.table_names():
        for row in raw_rows(table):
            cells += [(table, str(value)) for value in row if value is not None]
    return cells


def portal_updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "imbot_app_portal"')]


def raw_credential(user_id: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM imbot_app_credential WHERE user_id = %s",
            [user_id],
        )
        row = cursor.fetchone()
    return row[0], row[1]


def raw_application_token(member_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_token FROM imbot_app_portal WHERE member_id = %s", [member_id]
        )
        return str(cursor.fetchone()[0])


def tokens_in(payload: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in ("access_token", "refresh_token", "application_token", "CLIENT_ID"):
                if isinstance(value, str) and value:
                    found.add(value)
            else:
                found |= tokens_in(value)
    elif isinstance(payload, list):
        for item in payload:
            found |= tokens_in(item)
    return found


# --------------------------------------------------------------------------- the column


def test_tokens_are_sealed_in_the_column_and_plain_in_python(factory) -> None:
    portal = Portal.objects.get(member_id=factory.member_id)
    Credential.objects.create(portal=portal, user_id=7, access_token="acc-1", refresh_token="ref-1")

    access, refresh = raw_credential(7)
    assert access.startswith("fernet:") and refresh.startswith("fernet:")
    assert "acc-1" not in access and "ref-1" not in refresh
    credential = Credential.objects.get(user_id=7)
    assert (credential.access_token, credential.refresh_token) == ("acc-1", "ref-1")
    stored = raw_application_token(factory.member_id)
    assert stored.startswith("hmac:") and factory.application_token not in stored
    assert sealing.token_matches(portal.application_token, factory.application_token)
    assert not sealing.token_matches(portal.application_token, "forged")
    assert not sealing.token_matches(portal.application_token, "")


def test_sealed_columns_refuse_lookups(factory) -> None:
    """A prefix lookup would be an oracle on the stored value; equality could never match."""
    from django.core.exceptions import FieldError

    for lookup in ("access_token__startswith", "access_token", "refresh_token__contains"):
        with pytest.raises(FieldError):
            list(Credential.objects.filter(**{lookup: "x"}))
    with pytest.raises(FieldError):
        list(Portal.objects.filter(application_token__startswith="h"))
    assert Credential.objects.filter(access_token__isnull=True).count() == 0


def test_events_authenticate_against_the_digest_with_no_extra_query(client, factory) -> None:
    post_event(client, factory.message(text="warm-up"))
    with CaptureQueriesContext(connection) as sealed_run:
        response = post_event(client, factory.message(text="hello"))
    assert response.json()["status"] == "accepted"
    forged = factory.message(text="x")
    forged["auth"]["application_token"] = raw_application_token(factory.member_id)
    assert post_event(client, forged).status_code == 403  # the digest itself is no token
    # Sealing adds no statement (tests/test_queries.py counts the whole path: 6).
    assert portal_updates(sealed_run) == []


# --------------------------------------------------------------------------- anywhere


def test_no_token_appears_in_plaintext_in_any_table(client, settings) -> None:
    with FakeBitrix24() as fake:
        settings.IMBOT_CLIENT_ID = fake.client_id
        settings.IMBOT_CLIENT_SECRET = fake.client_secret
        settings.IMBOT_OAUTH_SERVERS = [fake.rest_url]
        settings.IMBOT_REGISTER_ON_INSTALL = False
        events = EventFactory(server_endpoint=fake.rest_url, fake=fake, client_id=fake.client_id)
        install = events.install()
        fake.add_install(
            member_id=events.member_id,
            client_id=fake.client_id,
            access_token=install["auth"]["access_token"],
            domain=events.domain,
            client_endpoint=fake.rest_url,
        )
        fake.add_bot(events.member_id, events.bot_id, events.bot_code)
        payloads = [
            install,
            events.message(text="one"),
            events.message(text="two", chat_id=4000),
            events.command(),
            events.join(),
        ]
        for payload in payloads:
            assert post_event(client, payload).status_code == 200, payload["event"]
        secrets = set().union(*(tokens_in(p) for p in payloads))
        secrets |= {fake.client_secret}
        portal = Portal.objects.get(member_id=events.member_id)
        fake.expire()
        RestClient(portal, user_id=events.bot_id).call("imbot.bot.list")
        assert fake.refreshes == 1
        for credential in Credential.objects.all():  # the refreshed pair included
            secrets |= {credential.access_token, credential.refresh_token} - {""}

    assert len(secrets) >= 8
    leaks = [(table, s) for table, cell in every_cell() for s in secrets if s in cell]
    assert leaks == []


def test_no_webhook_client_id_in_any_table(client, settings) -> None:
    client_id = "k3s9d0f8g7h6j5k4l3z2x1c0v9b8n7m6q5w4e3r2"
    settings.IMBOT_WEBHOOK_URL = "https://hooked.bitrix24.com/rest/1/abcd1234efgh5678/"
    settings.IMBOT_WEBHOOK_CLIENT_ID = client_id
    settings.IMBOT_REGISTER_ON_INSTALL = False
    events = EventFactory(domain="hooked.bitrix24.com", webhook_client_id=client_id)
    for payload in (events.install(), events.message(text="hi")):
        assert post_event(client, payload).status_code == 200, payload["event"]
    assert Portal.objects.get().webhook is True
    leaks = [table for table, cell in every_cell() if client_id in cell or "abcd1234efgh" in cell]
    assert leaks == []


# --------------------------------------------------------------------------- rotation


def test_rotation_from_a_to_b_then_dropping_a(client, settings) -> None:
    settings.IMBOT_ENCRYPTION_KEYS = [KEY_A]
    factory = EventFactory.installed()
    portal = Portal.objects.get(member_id=factory.member_id)
    Credential.objects.create(portal=portal, user_id=7, access_token="acc-7", refresh_token="ref")
    under_a = raw_credential(7)

    settings.IMBOT_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert Credential.objects.get(user_id=7).access_token == "acc-7"  # A still opens it
    out = StringIO()
    call_command("imbot_rotate_keys", stdout=out)
    assert "2 values re-sealed" in out.getvalue()
    assert "1 application-token digest still under an older key" in out.getvalue()
    assert raw_credential(7) != under_a
    # The portal's next event re-makes its digest under B: one UPDATE, once.
    with CaptureQueriesContext(connection) as first:
        assert post_event(client, factory.message(text="hi")).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert post_event(client, factory.message(text="ho")).status_code == 200
    assert len(portal_updates(first)) == 1 and portal_updates(second) == []

    settings.IMBOT_ENCRYPTION_KEYS = [KEY_B]
    credential = Credential.objects.get(user_id=7)
    assert (credential.access_token, credential.refresh_token) == ("acc-7", "ref")
    assert post_event(client, factory.message(text="again")).status_code == 200
    out = StringIO()
    call_command("imbot_rotate_keys", stdout=out)
    assert "0 values re-sealed" in out.getvalue()
    assert "every application-token digest is under the newest key" in out.getvalue()


def test_a_dropped_key_fails_loudly_not_silently(settings, factory) -> None:
    settings.IMBOT_ENCRYPTION_KEYS = [KEY_A]
    portal = Portal.objects.get(member_id=factory.member_id)
    Credential.objects.create(portal=portal, user_id=7, access_token="acc-7")
    settings.IMBOT_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(sealing.UnsealError) as raised:
        Credential.objects.get(user_id=7)
    assert "acc-7" not in str(raised.value)


def test_default_key_is_warned_about(settings) -> None:
    settings.IMBOT_ENCRYPTION_KEYS = None
    assert "imbot_app.W020" in {m.id for m in run_checks()}
    settings.IMBOT_ENCRYPTION_KEYS = [KEY_A]
    assert not {m.id for m in run_checks()} & {"imbot_app.W020", "imbot_app.E020", "imbot_app.E021"}
    settings.IMBOT_ENCRYPTION_KEYS = ["short"]
    assert "imbot_app.E021" in {m.id for m in run_checks()}
