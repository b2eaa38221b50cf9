"""imbot_simulate on your own bot: your commands, your messages, nothing left behind."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from imbot_app import on_command, on_message
from imbot_app.dispatch.context import CommandContext, MessageContext
from imbot_app.errors import BitrixError
from imbot_app.management.simulation import COMMAND, MESSAGE, Step, default_script, given_script
from imbot_app.models import Bot, Command, Event, Portal
from imbot_app.outbound.rest import RestClient, host_of
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.test_simulate import free_port

ROOT = Path(__file__).resolve().parent.parent
WEATHER_BOT = {
    "code": "weatherbot",
    "name": "Weather",
    "commands": [
        {"command": "weather", "title": "The weather", "params": "city"},
        {"command": "secret", "title": "Hidden", "hidden": True},
    ],
}


@pytest.fixture
def trusting(settings: Any) -> int:
    """The app trusts a fake on the returned port."""
    port = free_port()
    settings.IMBOT_OAUTH_SERVERS = [f"http://127.0.0.1:{port}/rest/"]
    settings.IMBOT_CLIENT_ID = FakeBitrix24.client_id
    settings.IMBOT_CLIENT_SECRET = FakeBitrix24.client_secret
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    return port


@pytest.fixture
def weather(isolated_routes: Any) -> None:
    @on_command("weather")
    def forecast(command: CommandContext) -> None:
        command.answer(f"sunny in {command.params or 'nowhere'}")

    @on_message()
    def chat(message: MessageContext) -> None:
        message.reply(f"you said {message.text}")


def simulate(live_server: Any, port: int, *args: str) -> str:
    out = StringIO()
    call_command(
        "imbot_simulate",
        *args,
        url=f"{live_server.url}/imbot/events/",
        fake_port=port,
        stdout=out,
    )
    return out.getvalue()


def test_the_script_comes_from_the_options() -> None:
    steps = given_script(["/weather berlin", "/help"], ["hi"])
    assert steps == [
        Step(COMMAND, "berlin", command="weather"),
        Step(COMMAND, "", command="help"),
        Step(MESSAGE, "hi"),
    ]
    with pytest.raises(ValueError, match="not a command"):
        given_script(["weather berlin"], [])
    with pytest.raises(ValueError, match="at most"):
        given_script([], ["x" * 5000])


def test_the_default_script_has_each_declared_visible_command(settings: Any) -> None:
    from imbot_app.lifecycle.bots import declared_bots

    settings.IMBOT_BOTS = [WEATHER_BOT]
    commands = [s for s in default_script(declared_bots()) if s.kind == COMMAND]
    assert commands == [Step(COMMAND, "city", command="weather", bot_code="weatherbot")]


@pytest.mark.django_db(transaction=True)
def test_commands_and_messages_reach_your_handlers_and_the_portal_is_removed(
    live_server, trusting, weather
) -> None:
    text = simulate(
        live_server, trusting, "--command", "/weather berlin", "--message", "hi", "--message", "yo"
    )

    assert "-> /weather berlin (ONIMCOMMANDADD): 200 accepted" in text
    assert "<- imbot.command.answer: 'sunny in berlin'" in text
    assert "<- imbot.message.add: 'you said hi'" in text
    assert "<- imbot.message.add: 'you said yo'" in text
    assert "/echo" not in text
    assert "Removed the simulated portal" in text
    # Nothing left for imbot_register to call at a dead fake.
    assert not Portal.objects.exists()
    assert not Bot.objects.exists() and not Command.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_declared_bots_are_registered_and_their_commands_tried(
    live_server, trusting, weather, settings
) -> None:
    settings.IMBOT_BOTS = [WEATHER_BOT]
    settings.IMBOT_PUBLIC_URL = live_server.url
    settings.IMBOT_REGISTER_ON_INSTALL = True  # the test settings turn it off

    text = simulate(live_server, trusting, "--keep")

    assert "the app registered bot weatherbot" in text
    assert "-> /weather city (ONIMCOMMANDADD): 200 accepted" in text
    assert "<- imbot.command.answer: 'sunny in city'" in text
    assert "/secret" not in text  # hidden commands are not tried
    portal = Portal.objects.get()  # --keep: still there, and no uninstall was sent
    assert portal.status == Portal.Status.INSTALLED
    assert Command.objects.filter(portal=portal, command="weather").exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def run_manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_busy_fake_port_is_one_clear_line(busy_port: int) -> None:
    result = run_manage("imbot_simulate", "--fake-port", str(busy_port), "--serve", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: port {busy_port} on 127.0.0.1 is already in use, so the fake Bitrix24 "
        "cannot listen there: stop what uses it or pick another port with --fake-port "
        "(make demo: DEMO_PORT / DEMO_FAKE_PORT)"
    ]


def test_a_busy_server_port_is_one_clear_line(busy_port: int) -> None:
    result = run_manage(
        "imbot_simulate", "--fake-port", str(free_port()), "--serve", str(busy_port)
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert f"port {busy_port} on 127.0.0.1 is already in use" in line and "--serve" in line


def test_serve_talks_to_this_project_and_removes_the_portal(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    # Settings that would refuse the fake: --serve brings its own.
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "IMBOT_OAUTH_SERVERS": "https://oauth.bitrix.info/rest/",
        "IMBOT_CLIENT_ID": "",
        "IMBOT_PUBLIC_URL": "",
    }
    assert run_manage("migrate", "--noinput", env=env).returncode == 0

    result = run_manage(
        "imbot_simulate",
        "--serve",
        str(free_port()),
        "--fake-port",
        str(free_port()),
        "--command",
        "/echo from the CLI",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert "the app registered bot echobot" in result.stdout
    assert "<- imbot.command.answer: 'from the CLI'" in result.stdout
    assert "Removed the simulated portal" in result.stdout
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM imbot_app_portal").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM imbot_app_command").fetchone() == (0,)


def test_host_of_keeps_host_and_port_only() -> None:
    url = "https://user:pw@b24.example.com:8443/rest/1/SECRETCODE/imbot.message.add?auth=TOKEN"
    assert host_of(url) == "b24.example.com:8443"
    assert host_of("https://b24.example.com/rest/") == "b24.example.com"


@pytest.mark.django_db
def test_a_network_error_names_the_host_and_nothing_secret() -> None:
    fake = FakeBitrix24().start()
    factory = EventFactory.connected(fake)
    port = fake.url.rsplit(":", 1)[1]
    fake.stop()  # the portal's Bitrix24 is gone
    portal = Portal.objects.get(member_id=factory.member_id)
    token = portal.credentials.get(user_id=factory.user_id).access_token

    with pytest.raises(BitrixError) as caught:
        RestClient(portal).call("imbot.bot.list")

    assert caught.value.error == "NETWORK_ERROR"
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert token not in str(caught.value) and "/rest/" not in str(caught.value)
