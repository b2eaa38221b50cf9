"""Declaring bots and commands: settings and code, validation, the handler URL, system checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from imbot_app.dispatch.routing import router
from imbot_app.lifecycle import bots
from imbot_app.lifecycle.bots import declare, declared_bots
from imbot_app.lifecycle.specs import BotSpec, CommandSpec, DeclarationError
from tests.registration_kit import ECHO, echo


@pytest.fixture(autouse=True)
def _no_code_declarations() -> Any:
    with bots.registry.isolated():
        yield


def ids() -> set[str]:
    return {message.id or "" for message in run_checks()}


# --------------------------------------------------------------------------- specs


def test_a_settings_entry_becomes_a_normalised_spec(settings) -> None:
    settings.IMBOT_BOTS = [echo(type="b", color="green", properties={"email": "bot@x.com"})]
    [spec] = declared_bots()
    assert (spec.code, spec.type, spec.color, spec.openline) == ("echobot", "B", "GREEN", False)
    assert spec.properties_payload() == {"NAME": "Echo bot", "COLOR": "GREEN", "EMAIL": "bot@x.com"}
    echo_spec, help_spec = spec.command_specs
    assert echo_spec.lang() == [
        {"LANGUAGE_ID": "en", "TITLE": "Repeat a text", "PARAMS": "text"},
        {"LANGUAGE_ID": "de", "TITLE": "Einen Text wiederholen"},
    ]
    assert (echo_spec.common, echo_spec.hidden, echo_spec.extranet) == (True, False, False)
    # A plain string is English.
    assert help_spec.lang() == [{"LANGUAGE_ID": "en", "TITLE": "What I can do"}]
    assert help_spec.main_title == "What I can do"


def test_open_line_bots_always_support_open_lines() -> None:
    assert BotSpec(code="lines", name="Lines", type="O").openline is True
    assert BotSpec(code="lines", name="Lines", type="O").edits_bound_at_registration
    assert BotSpec(code="sup", name="Sup", type="S").edits_bound_at_registration
    assert not BotSpec(code="plain", name="Plain").edits_bound_at_registration
    assert BotSpec(code="hybrid", name="Hybrid", openline=True).edits_bound_at_registration


def test_code_declarations_join_the_settings_ones(settings) -> None:
    settings.IMBOT_BOTS = [ECHO]
    spec = declare(code="helper", name="Helper", commands=[CommandSpec("ask", title="Ask me")])
    assert declare(spec) is spec  # a module imported twice declares it again: harmless
    assert [s.code for s in declared_bots()] == ["echobot", "helper"]
    with pytest.raises(DeclarationError, match="declared twice, differently"):
        declare(code="helper", name="Another helper")
    declare(code="echobot", name="Echo again")
    with pytest.raises(DeclarationError, match="both in IMBOT_BOTS and with declare"):
        declared_bots()


def test_isolated_registry_gives_the_earlier_declarations_back() -> None:
    declare(code="outer", name="Outer")
    with bots.registry.isolated():
        assert bots.registry.specs() == ()
        declare(code="inner", name="Inner")
    assert [s.code for s in bots.registry.specs()] == ["outer"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "No code"}, "needs a 'code'"),
        ({"code": "echo bot", "name": "X"}, "a code is letters, digits"),
        ({"code": "echobot"}, "needs a name"),
        ({"code": "echobot", "name": "X", "type": "Z"}, "type 'Z' is not one of B"),
        ({"code": "echobot", "name": "X", "color": "TEAL"}, "color 'TEAL' is not one of"),
        ({"code": "echobot", "name": "X", "colour": "RED"}, "unknown keys colour"),
        ({"code": "echobot", "name": "X", "openline": "yes"}, "openline must be True or False"),
        ({"code": "echobot", "name": "X", "properties": {"SKYPE": "x"}}, "property 'SKYPE'"),
        (
            {"code": "echobot", "name": "X", "properties": {"PERSONAL_BIRTHDAY": "1.1.2020"}},
            "PERSONAL_BIRTHDAY is YYYY-MM-DD",
        ),
        ({"code": "echobot", "name": "X", "commands": "echo"}, "commands must be a list"),
        (
            {"code": "echobot", "name": "X", "commands": [{"command": "/echo", "title": "E"}]},
            "without the slash",
        ),
        (
            {"code": "echobot", "name": "X", "commands": [{"command": "echo list", "title": "E"}]},
            "Latin letters, digits and '_' only",
        ),
        ({"code": "echobot", "name": "X", "commands": [{"command": "echo"}]}, "needs a title"),
        (
            {
                "code": "echobot",
                "name": "X",
                "commands": [{"command": "echo", "title": "E", "params": {"de": "Text"}}],
            },
            "params in de but no title in that language",
        ),
        (
            {"code": "echobot", "name": "X", "commands": [{"command": "e", "title": {"EN": "E"}}]},
            "use two lower-case letters",
        ),
        (
            {"code": "echobot", "name": "X", "commands": [{"command": "e", "title": {"en": " "}}]},
            "title in 'en' is empty",
        ),
        (
            {
                "code": "echobot",
                "name": "X",
                "commands": [{"command": "e", "title": "E"}, {"command": "e", "title": "F"}],
            },
            "declares /e twice",
        ),
        (
            {"code": "echobot", "name": "X", "commands": [{"command": "e", "title": "E", "x": 1}]},
            "unknown keys x",
        ),
    ],
)
def test_invalid_declarations_say_which_and_why(settings, entry, message) -> None:
    settings.IMBOT_BOTS = [ECHO, entry]
    with pytest.raises(DeclarationError, match="IMBOT_BOTS\\[1\\]") as raised:
        declared_bots()
    assert message in str(raised.value)


def test_duplicate_codes_in_settings_are_refused(settings) -> None:
    settings.IMBOT_BOTS = [ECHO, ECHO]
    with pytest.raises(DeclarationError, match="IMBOT_BOTS\\[1\\]: bot 'echobot' is declared"):
        declared_bots()


def test_imbot_bots_must_be_a_list(settings) -> None:
    settings.IMBOT_BOTS = ECHO
    with pytest.raises(DeclarationError, match="must be a list"):
        declared_bots()


# --------------------------------------------------------------------------- handler URL


@pytest.mark.parametrize(
    "public_url",
    ["https://bot.example.com", "https://bot.example.com/", " https://bot.example.com "],
)
def test_the_handler_url_is_the_public_url_plus_the_events_path(settings, public_url) -> None:
    settings.IMBOT_PUBLIC_URL = public_url
    assert bots.handler_url() == "https://bot.example.com/imbot/events/"
    assert bots.install_url() == "https://bot.example.com/imbot/install/"


def test_a_public_url_with_a_path_keeps_it(settings) -> None:
    settings.IMBOT_PUBLIC_URL = "https://example.com/bot"
    assert bots.handler_url() == "https://example.com/bot/imbot/events/"


@pytest.mark.parametrize(
    ("public_url", "problem"),
    [
        ("", "IMBOT_PUBLIC_URL is not set"),
        ("bot.example.com", "is not an absolute http(s) URL"),
        ("ftp://bot.example.com", "is not an absolute http(s) URL"),
        ("https://bot.example.com/?a=1", "must not have a query"),
    ],
)
def test_an_unusable_public_url_is_a_clear_error(settings, public_url, problem) -> None:
    settings.IMBOT_PUBLIC_URL = public_url
    with pytest.raises(ImproperlyConfigured, match=problem.replace("(", r"\(").replace(")", r"\)")):
        bots.handler_url()


# --------------------------------------------------------------------------- checks


def test_system_checks(settings) -> None:
    settings.IMBOT_BOTS = []
    settings.IMBOT_PUBLIC_URL = ""
    assert not {"imbot_app.E001", "imbot_app.W003", "imbot_app.W004"} & ids()

    settings.IMBOT_BOTS = [ECHO]
    assert "imbot_app.W003" in ids()

    settings.IMBOT_PUBLIC_URL = "http://bot.example.com"
    assert "imbot_app.W004" in ids()

    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    assert not {"imbot_app.E001", "imbot_app.W003", "imbot_app.W004"} & ids()

    settings.IMBOT_BOTS = [{"code": "echobot"}]
    [error] = [m for m in run_checks() if m.id == "imbot_app.E001"]
    assert "needs a name" in error.msg


# --------------------------------------------------------------------------- the example


def test_the_example_project_declares_the_echo_bot_its_handlers_answer() -> None:
    from project import settings as project_settings

    [spec] = [BotSpec.from_dict(entry) for entry in project_settings.IMBOT_BOTS]
    assert spec.code == "echobot"
    words = [c.command for c in spec.command_specs]
    assert words == ["echo", "help"]
    routed = {route.description for route in router.routes}
    for word in words:
        assert f"command {word}" in routed
