"""``manage.py imbot_simulate``: a simulated Bitrix24 portal talking to your running bot.

A newcomer's first look at the product working end to end, and a way to try handlers without a
public URL: it starts the fake Bitrix24 (a real HTTP server on 127.0.0.1), installs a simulated
portal on the app at ``--url`` (by default the ``make run`` server), sends the reference pages'
events (the ``/echo test`` command, a private message, a group mention, a join) and prints what
the bot answered.

The app must trust the fake as an OAuth server and know its client id:
``IMBOT_OAUTH_SERVERS=http://127.0.0.1:8765/rest/ IMBOT_CLIENT_ID=local.imbot.test
IMBOT_CLIENT_SECRET=fake-client-secret``.  ``--serve PORT`` (what ``make demo`` runs) starts
this project's development server so configured, talks to it, and stops it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from imbot_app.testing import EventFactory, FakeBitrix24, encode_event

ANSWER_METHODS = ("imbot.message.add", "imbot.command.answer", "imbot.message.update")


class Command(BaseCommand):
    help = "Install a simulated Bitrix24 portal on a running bot and show what it answers."
    # This process only plays Bitrix24; the settings that matter are the bot server's.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/imbot/events/",
            help="the bot's event handler URL (default: the `make run` server)",
        )
        parser.add_argument("--fake-port", type=int, default=8765, help="port of the fake")
        parser.add_argument(
            "--wait", type=float, default=3.0, help="seconds to wait for each answer"
        )
        parser.add_argument(
            "--serve",
            type=int,
            metavar="PORT",
            help="start this project's server on PORT, trusting the fake, and talk to it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url: str = options["url"]
        with FakeBitrix24(port=options["fake_port"]) as fake:
            self.stdout.write(f"Fake Bitrix24 on {fake.url} (OAuth and REST)")
            if options["serve"]:
                port = options["serve"]
                url = f"http://127.0.0.1:{port}/imbot/events/"
                with self._server(fake, port):
                    self._run(fake, url, options["wait"])
            else:
                self._run(fake, url, options["wait"])

    def _run(self, fake: FakeBitrix24, url: str, wait: float) -> None:
        factory = self._install(fake, url)
        self._conversation(fake, factory, url, wait)

    @contextmanager
    def _server(self, fake: FakeBitrix24, port: int) -> Iterator[None]:
        """``manage.py runserver`` on ``port``, configured to trust the fake."""
        env = {
            **os.environ,
            "IMBOT_OAUTH_SERVERS": fake.rest_url,
            "IMBOT_CLIENT_ID": fake.client_id,
            "IMBOT_CLIENT_SECRET": fake.client_secret,
            "IMBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # This throwaway server has no imbot_worker beside it: it answers in the request.
            "IMBOT_DISPATCH": "inline",
        }
        manage = Path(sys.argv[0]).resolve()
        log = open(os.devnull, "wb")  # noqa: SIM115 (closed below)
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, str(manage), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/imbot/events/", timeout=1)
                    break
                except requests.RequestException:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise CommandError(f"the server on port {port} did not start") from None
                    time.sleep(0.2)
            self.stdout.write(f"Bot served on http://127.0.0.1:{port}/ (stopped at the end)")
            yield
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()

    # ------------------------------------------------------------------ steps

    def _install(self, fake: FakeBitrix24, url: str) -> EventFactory:
        member_id = secrets.token_hex(16)
        factory = EventFactory(
            member_id=member_id,
            domain=f"demo-{member_id[:6]}.bitrix24.com",
            server_endpoint=fake.rest_url,
            client_id=fake.client_id,
            user_id=1,
            user_name="Demo User",
            fake=fake,
        )
        self.stdout.write(f"Installing portal {factory.domain} on {url}")
        answer = self._post(url, factory.install())
        if answer.status_code != 200:
            raise CommandError(
                f"the app refused the install ({answer.status_code} {answer.text.strip()}).\n"
                f"Start it trusting the fake: IMBOT_OAUTH_SERVERS={fake.rest_url} "
                f"IMBOT_CLIENT_ID={fake.client_id} IMBOT_CLIENT_SECRET={fake.client_secret} "
                "(or run `make demo`)."
            )
        self.stdout.write(self.style.SUCCESS(f"  installed (event {answer.json()['event_id']})"))
        self._pick_bot(fake, factory)
        return factory

    def _pick_bot(self, fake: FakeBitrix24, factory: EventFactory) -> None:
        """Use the bot the app registered on install, or a demo echo bot if it registered none."""
        deadline = time.monotonic() + 5
        while not fake.bots(factory.member_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        bots = fake.bots(factory.member_id)
        if bots:
            bot_id, bot = next(iter(bots.items()))
            factory.bot_id, factory.bot_code = bot_id, str(bot["CODE"])
            self.stdout.write(f"  the app registered bot {bot['CODE']} (#{bot_id})")
        else:
            fake.add_bot(factory.member_id, factory.bot_id, factory.bot_code)
            self.stdout.write(f"  no bot registered on install: using demo bot #{factory.bot_id}")
        commands = {
            str(c["COMMAND"]): command_id
            for command_id, c in fake.commands(factory.member_id).items()
            if c["BOT_ID"] == factory.bot_id
        }
        if "echo" not in commands:
            commands["echo"] = fake.next_id()
            fake.add_command(factory.member_id, factory.bot_id, "echo", commands["echo"])
        self._echo_id = commands["echo"]

    def _conversation(
        self, fake: FakeBitrix24, factory: EventFactory, url: str, wait: float
    ) -> None:
        steps = [
            ("/echo test", factory.command("echo", "test", command_id=self._echo_id)),
            ('"Hello, bot" in a private chat', factory.message("Hello, bot")),
            (
                '"[USER=bot] how are you?" in group chat42',
                factory.message("how are you?", chat_id=42),
            ),
            ("the bot added to group chat42", factory.join(chat_id=42)),
        ]
        failures = 0
        for title, payload in steps:
            before = len(fake.calls)
            answer = self._post(url, payload)
            body = (
                answer.json()
                if answer.headers.get("Content-Type", "").startswith("application/json")
                else {}
            )
            self.stdout.write(
                f"-> {title} ({payload['event']}): {answer.status_code} {body.get('status', '')}"
            )
            if answer.status_code != 200:
                failures += 1
                continue
            replies = self._answers(fake, before, wait)
            if not replies:
                self.stdout.write("   (no answer)")
            for method, text in replies:
                self.stdout.write(self.style.SUCCESS(f"   <- {method}: {text!r}"))
        if failures:
            raise CommandError(f"{failures} event(s) were refused")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _post(url: str, payload: dict[str, Any]) -> requests.Response:
        try:
            return requests.post(
                url,
                data=encode_event(payload),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=30,
            )
        except requests.RequestException as exc:
            raise CommandError(f"cannot reach {url}: {exc} (is `make run` running?)") from exc

    @staticmethod
    def _answers(fake: FakeBitrix24, before: int, wait: float) -> list[tuple[str, str]]:
        """The bot's answering calls since ``before``, waiting up to ``wait`` s for the first."""
        deadline = time.monotonic() + wait
        while True:
            calls = [c for c in fake.calls[before:] if c.method in ANSWER_METHODS and c.token]
            if calls or time.monotonic() > deadline:
                return [(c.method, str(c.params.get("MESSAGE", ""))) for c in calls]
            time.sleep(0.05)
