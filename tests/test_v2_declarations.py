"""Declaring Chatbots 2.0 bots: `api` and `event_mode`, checked when declared and at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks

from imbot_app.lifecycle import bots
from imbot_app.lifecycle.specs import BotSpec, DeclarationError
from tests.registration_kit import echo


@pytest.fixture(autouse=True)
def _no_code_declarations() -> Any:
    with bots.registry.isolated():
        yield


def test_existing_declarations_stay_v1_without_an_event_mode() -> None:
    spec = BotSpec.from_dict(echo())
    assert (spec.api, spec.event_mode) == ("v1", "")


def test_a_v2_bot_defaults_to_fetch_mode_and_takes_webhook_mode() -> None:
    assert BotSpec(code="b", name="B", api="v2").event_mode == "fetch"
    spec = BotSpec.from_dict(echo(api="V2", event_mode="Webhook"))
    assert (spec.api, spec.event_mode) == ("v2", "webhook")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (echo(api="v3"), "api 'v3' is not one of v1, v2"),
        (echo(api=2), "api 2 is not one of v1, v2"),
        (echo(event_mode="fetch"), "event_mode is for Chatbots 2.0 bots"),
        (echo(api="v2", event_mode="poll"), "event_mode 'poll' is not one of fetch, webhook"),
        (echo(api="v2", type="H"), "Chatbots 2.0 has no type H"),
    ],
)
def test_invalid_combinations_say_why(settings, entry, message) -> None:
    with pytest.raises(DeclarationError, match=message):
        BotSpec.from_dict(entry)
    settings.IMBOT_BOTS = [entry]
    [error] = [m for m in run_checks() if m.id == "imbot_app.E001"]
    assert message.split(" ")[0] in error.msg and "echobot" in error.msg


def test_v1_and_v2_bots_are_declared_together(settings) -> None:
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_BOTS = [echo(), echo(code="helper", api="v2")]
    assert [s.api for s in bots.declared_bots()] == ["v1", "v2"]
    assert not [m for m in run_checks() if m.id and m.id.startswith("imbot_app.E00")]


def test_a_webhook_mode_v2_bot_needs_the_public_url(settings) -> None:
    settings.IMBOT_PUBLIC_URL = ""
    settings.IMBOT_BOTS = [echo(api="v2", event_mode="webhook")]
    [error] = [m for m in run_checks() if m.id == "imbot_app.E002"]
    assert "echobot" in error.msg and "webhook mode" in error.msg
    assert 'event_mode="fetch"' in (error.hint or "")

    settings.IMBOT_BOTS = [echo(api="v2")]  # fetch mode: needs no public address at all
    assert not {"imbot_app.E002", "imbot_app.W003"} & {m.id for m in run_checks()}
    settings.IMBOT_BOTS = [echo(api="v2"), echo(code="old")]  # a v1 bot does
    assert "imbot_app.W003" in {m.id for m in run_checks()}
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_BOTS = [echo(api="v2", event_mode="webhook")]
    assert not [m for m in run_checks() if m.id == "imbot_app.E002"]
