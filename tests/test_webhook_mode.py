"""Webhook mode: a bot on one portal, registered and answering through an inbound webhook."""

from __future__ import annotations

import json
import logging
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import call_command

from imbot_app import errors
from imbot_app.models import Bot, Command, Event, HandlerRun, Message, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.outbound.webhook import generate_client_id
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

pytestmark = pytest.mark.django_db

CLIENT_ID = "k3s9d0f8g7h6j5k4l3z2x1c0v9b8n7m6q5w4e3r2"  # 40 characters
WEBHOOK_SAMPLES = [
    "010_ONIMBOTMESSAGEADD_diogenes-log-whatsapp-webhookmode.form",
    "011_ONIMBOTMESSAGEADD_diogenes-log-accented.form",
    "037_ONIMBOTJOINCHAT_diogenes-log-openline-webhookmode.form",
    "038_ONIMBOTJOINCHAT_diogenes-log-personal-webhookmode.form",
]


def post_raw(client: Any, body: bytes) -> Any:
    return client.post("/imbot/events/", body, content_type="application/x-www-form-urlencoded")


def sample(corpus_dir: Path, name: str) -> tuple[bytes, dict[str, Any]]:
    from imbot_app.wire import decode_form

    body = (corpus_dir / name).read_bytes()
    return body, decode_form(body)


# --------------------------------------------------------------------------- the corpus


@pytest.mark.parametrize("name", WEBHOOK_SAMPLES)
def test_corpus_webhook_samples_are_accepted(client, settings, corpus_dir, name) -> None:
    body, decoded = sample(corpus_dir, name)
    domain = decoded["auth"]["domain"]
    settings.IMBOT_WEBHOOK_URL = f"https://{domain}/rest/1/abcd1234efgh5678/"
    settings.IMBOT_WEBHOOK_CLIENT_ID = decoded["CLIENT_ID"]

    response = post_raw(client, body)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    portal = Portal.objects.get()
    assert portal.webhook is True
    assert portal.member_id == decoded["auth"]["member_id"]  # bound on first sight
    assert portal.domain == domain
    event = Event.objects.get()
    stored = json.dumps(event.payload)
    assert decoded["CLIENT_ID"] not in stored
    assert "abcd1234efgh5678" not in stored
    if decoded["event"] == "ONIMBOTMESSAGEADD":
        params = decoded["data"]["PARAMS"]
        message = Message.objects.get(message_id=int(params["MESSAGE_ID"]))
        assert message.text == params["MESSAGE"]
        assert message.chat.dialog_id == params["DIALOG_ID"]
    # ...and the next event of the now-bound portal too.
    assert post_raw(client, body).json()["status"] == "duplicate"


@pytest.mark.parametrize("name", WEBHOOK_SAMPLES)
def test_corpus_webhook_samples_with_another_client_id_are_refused(
    client, settings, corpus_dir, caplog, name
) -> None:
    body, decoded = sample(corpus_dir, name)
    settings.IMBOT_WEBHOOK_URL = f"https://{decoded['auth']['domain']}/rest/1/abcd1234efgh5678/"
    settings.IMBOT_WEBHOOK_CLIENT_ID = CLIENT_ID
    with caplog.at_level(logging.WARNING, logger="imbot_app"):
        response = post_raw(client, body)
    assert response.status_code == 403
    assert not Event.objects.exists()
    assert not Portal.objects.filter(member_id=decoded["auth"]["member_id"]).exists()
    assert CLIENT_ID not in caplog.text
    assert decoded["CLIENT_ID"] not in caplog.text


# --------------------------------------------------------------------------- authentication


@pytest.fixture
def webhook_events(settings: Any) -> EventFactory:
    settings.IMBOT_WEBHOOK_URL = "https://team.bitrix24.com/rest/1/abcd1234efgh5678/"
    settings.IMBOT_WEBHOOK_CLIENT_ID = CLIENT_ID
    return EventFactory(domain="team.bitrix24.com", webhook_client_id=CLIENT_ID)


def test_a_bound_webhook_portal_refuses_any_other_token(client, webhook_events) -> None:
    assert post_event(client, webhook_events.message("bind me")).status_code == 200
    for client_id, token in [(CLIENT_ID, "other"), ("other", CLIENT_ID), ("x", "x")]:
        payload = webhook_events.message("forged")
        payload["CLIENT_ID"] = client_id
        payload["auth"]["application_token"] = token
        assert post_event(client, payload).status_code == 403
    assert Event.objects.count() == 1


def test_our_client_id_from_another_domain_is_refused(client, webhook_events) -> None:
    other = EventFactory(domain="elsewhere.bitrix24.com", webhook_client_id=CLIENT_ID)
    assert post_event(client, other.message("hi")).status_code == 403
    assert not Portal.objects.exists()


def test_the_webhook_portal_stays_bound_to_its_first_member_id(client, webhook_events) -> None:
    assert post_event(client, webhook_events.message("first")).status_code == 200
    impostor = EventFactory(domain="team.bitrix24.com", webhook_client_id=CLIENT_ID)
    assert post_event(client, impostor.message("second")).status_code == 403
    assert Portal.objects.get().member_id == webhook_events.member_id


def test_oauth_portals_are_unaffected_by_webhook_mode(client, webhook_events) -> None:
    oauth = EventFactory.installed()
    assert post_event(client, oauth.message("normal")).json()["status"] == "accepted"
    assert Portal.objects.get(member_id=oauth.member_id).webhook is False


# --------------------------------------------------------------------------- registration + replies


@pytest.fixture
def on_fake(settings: Any, fake_b24: FakeBitrix24) -> tuple[FakeBitrix24, EventFactory]:
    """A portal on the fake with an inbound webhook; webhook mode configured for it."""
    member_id = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    url = fake_b24.add_webhook(member_id, user_id=1, domain="127.0.0.1")
    settings.IMBOT_WEBHOOK_URL = url
    settings.IMBOT_WEBHOOK_CLIENT_ID = CLIENT_ID
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    events = EventFactory(
        member_id=member_id, domain="127.0.0.1", webhook_client_id=CLIENT_ID, fake=fake_b24
    )
    return fake_b24, events


def test_imbot_register_goes_through_the_webhook(on_fake, settings) -> None:
    fake, _ = on_fake
    out = StringIO()
    call_command("imbot_register", stdout=out)

    portal = Portal.objects.get()
    assert portal.webhook and portal.domain == "127.0.0.1"
    [register] = fake.calls_to("imbot.register")
    assert register.webhook is True
    assert register.token is None  # no OAuth tokens at all
    assert register.params["CLIENT_ID"] == CLIENT_ID
    assert register.params["CODE"] == "echobot"
    bot = Bot.objects.get(portal=portal)
    assert bot.bot_id in fake.bots(on_fake[1].member_id)
    commands = set(Command.objects.filter(portal=portal).values_list("command", flat=True))
    assert commands == {"echo", "help"}
    assert all(
        c.params.get("CLIENT_ID") == CLIENT_ID for c in fake.calls_to("imbot.command.register")
    )
    assert fake.calls_to("event.bind") == []  # no application events in webhook mode
    assert settings.IMBOT_WEBHOOK_URL not in out.getvalue()

    calls = len(fake.calls)
    call_command("imbot_register", stdout=StringIO())
    assert [c.method for c in fake.calls[calls:]] == []  # nothing new to send


def test_echo_answers_through_the_webhook(client, on_fake, deliver) -> None:
    fake, events = on_fake
    call_command("imbot_register", stdout=StringIO())
    bot = Bot.objects.get()
    echo = Command.objects.get(command="echo")
    events.bot_id, events.bot_code = bot.bot_id, bot.code

    deliver(events.command("echo", "through the hook", command_id=echo.command_id))

    portal = Portal.objects.get()
    assert portal.member_id == events.member_id  # bound by the event
    [answer] = fake.calls_to("imbot.command.answer")
    assert answer.webhook is True and answer.token is None
    assert answer.params["CLIENT_ID"] == CLIENT_ID
    assert answer.params["COMMAND_ID"] == echo.command_id
    assert answer.params["MESSAGE"] == "through the hook"
    out = Message.objects.get(direction="out")
    assert out.text == "through the hook"
    assert HandlerRun.objects.get().status == HandlerRun.Status.SUCCEEDED


def test_rest_client_backs_off_and_batches_through_the_webhook(on_fake) -> None:
    fake, _ = on_fake
    call_command("imbot_register", stdout=StringIO())
    portal = Portal.objects.get()
    fake.throttle(2)
    client = RestClient(portal)
    assert client.call("imbot.bot.list")
    assert client.stats.retries == 2
    outcome = client.batch(
        {
            "a": ("imbot.bot.list", None),
            "b": ("imbot.update", {"BOT_ID": 1, "FIELDS": {"CODE": "x"}}),
        }
    )
    assert set(outcome.results) == {"a"}
    assert outcome.errors["b"].error == "BOT_ID_ERROR"
    # Every imbot sub-call carried the CLIENT_ID.
    subs = [c for c in fake.calls if c.in_batch]
    assert subs and all(c.params.get("CLIENT_ID") == CLIENT_ID for c in subs)


def test_the_webhook_url_never_leaks(client, on_fake, deliver, settings, caplog) -> None:
    fake, events = on_fake
    call_command("imbot_register", stdout=StringIO())
    code = re.search(r"/rest/1/([0-9a-f]+)/", settings.IMBOT_WEBHOOK_URL).group(1)  # type: ignore[union-attr]
    events.bot_id = Bot.objects.get().bot_id
    # The replies fail: the webhook stops answering.
    settings.IMBOT_WEBHOOK_URL = settings.IMBOT_WEBHOOK_URL.replace(
        str(fake.url.rsplit(":", 1)[1]), "9"
    )
    with caplog.at_level(logging.DEBUG):
        deliver(events.message("hello?"))

    run = HandlerRun.objects.get()
    assert run.status == HandlerRun.Status.FAILED
    assert "NETWORK_ERROR" in run.error
    for text in (run.error, run.traceback, caplog.text, json.dumps(Event.objects.get().payload)):
        assert code not in text
        assert CLIENT_ID not in text
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.login(username="admin", password="pw")
    page = client.get(f"/admin/imbot_app/portal/{Portal.objects.get().pk}/change/")
    assert page.status_code == 200
    assert code not in page.content.decode()


def test_a_webhook_portal_without_the_settings_is_a_clear_error(on_fake, settings) -> None:
    call_command("imbot_register", stdout=StringIO())
    settings.IMBOT_WEBHOOK_URL = ""
    with pytest.raises(errors.PortalUnavailable, match="webhook mode"):
        RestClient(Portal.objects.get()).call("imbot.bot.list")


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("url", "client_id", "expected"),
    [
        ("https://team.bitrix24.com/rest/1/abcd/", "", {"imbot_app.E010"}),
        ("", CLIENT_ID, {"imbot_app.E010"}),
        ("https://team.bitrix24.com/crm/", CLIENT_ID, {"imbot_app.E011"}),
        ("https://team.bitrix24.com/rest/1/abcd/", "short", {"imbot_app.W010"}),
        ("http://team.bitrix24.com/rest/1/abcd/", CLIENT_ID, {"imbot_app.W011"}),
        ("https://team.bitrix24.com/rest/1/abcd/", CLIENT_ID, set()),
        ("", "", set()),
    ],
)
def test_system_checks_explain_a_half_configured_webhook(settings, url, client_id, expected):
    settings.IMBOT_WEBHOOK_URL = url
    settings.IMBOT_WEBHOOK_CLIENT_ID = client_id
    webhook_checks = {"imbot_app.E010", "imbot_app.E011", "imbot_app.W010", "imbot_app.W011"}
    assert {m.id for m in run_checks()} & webhook_checks == expected


def test_a_malformed_webhook_url_does_not_break_the_endpoint(client, settings, factory) -> None:
    settings.IMBOT_WEBHOOK_URL = "not a url"
    settings.IMBOT_WEBHOOK_CLIENT_ID = CLIENT_ID
    assert post_event(client, factory.message("still fine")).status_code == 200


def test_generate_client_id() -> None:
    out = StringIO()
    call_command("imbot_register", generate_client_id=True, stdout=out)
    value = out.getvalue().strip()
    assert re.fullmatch(r"[a-z0-9]{40}", value)
    assert generate_client_id() != generate_client_id()
