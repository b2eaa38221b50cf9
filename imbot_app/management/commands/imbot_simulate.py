"""``manage.py imbot_simulate``: a simulated Bitrix24 portal talking to your bot.

A first look at a bot working end to end, and a way to try handlers without a public URL: it
starts the fake Bitrix24 (a real HTTP server on 127.0.0.1), installs a simulated portal on the
app, lets it register its declared bots, sends the script and prints what the bots answered:

    manage.py imbot_simulate --serve 8001                          # each declared command once
    manage.py imbot_simulate --serve 8001 --command "/weather berlin" --message "hi"
    manage.py imbot_simulate --url http://127.0.0.1:8000/imbot/events/   # a server you run
    manage.py imbot_simulate --api v2 --mode fetch      # Chatbots 2.0, no public address
    manage.py imbot_simulate --api v2 --mode webhook --serve 8001

``--api v2`` simulates a Chatbots 2.0 bot (:mod:`imbot_app.management.simulation_v2`): in
fetch mode the fake queues its events and this process polls ``imbot.v2.Event.get`` and runs
the handlers, so no server is needed at all.

``--serve PORT`` (what ``make demo`` runs) starts this project's development server on PORT
with settings of its own: the project's, plus the fake as the trusted OAuth server, its client
id and secret, ``IMBOT_PUBLIC_URL`` on PORT and inline dispatch; so any project can be
simulated without reading those from the environment.  A server you run yourself must trust
the fake: ``IMBOT_OAUTH_SERVERS=http://127.0.0.1:8765/rest/ IMBOT_CLIENT_ID=local.imbot.test
IMBOT_CLIENT_SECRET=fake-client-secret``.

At the end the simulated portal is uninstalled (``CLEAN=1``) and deleted from this project's
database with its bots, commands and events, unless ``--keep``.  See
:mod:`imbot_app.management.simulation`.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import time
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from imbot_app.lifecycle.bots import declared_bots
from imbot_app.lifecycle.specs import DeclarationError
from imbot_app.management.commands._arguments import repeatable
from imbot_app.management.commands._simulated_server import port_in_use_message, served_project
from imbot_app.management.simulation import (
    COMMAND,
    JOIN,
    Step,
    default_script,
    forget_portals,
    given_script,
    post_form,
)
from imbot_app.management.simulation_v2 import FETCH, MODES, V2Simulation, in_process_settings
from imbot_app.testing import EventFactory, FakeBitrix24

ANSWER_METHODS = ("imbot.message.add", "imbot.command.answer", "imbot.message.update")


class Command(BaseCommand):
    help = "Install a simulated Bitrix24 portal on your bot, talk to it, show what it answers."
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
        repeatable(
            parser,
            "--command",
            "commands",
            'send this command, e.g. "/weather berlin" (repeatable)',
            metavar='"/WORD PARAMS"',
        )
        repeatable(
            parser,
            "--message",
            "messages",
            "send this private message (repeatable)",
            metavar="TEXT",
        )
        parser.add_argument(
            "--api", choices=("v1", "v2"), default="v1", help="chat-bot API (default v1)"
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            default=FETCH,
            help="v2 only: how events reach the bot (default fetch: no public address)",
        )
        parser.add_argument(
            "--keep",
            action="store_true",
            help="keep the simulated portal (and its bots, commands, events) afterwards",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            specs = declared_bots()
            given = given_script(options["commands"], options["messages"])
        except (DeclarationError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        steps = given or default_script(specs)
        fake = FakeBitrix24(port=options["fake_port"])
        try:
            fake.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise CommandError(
                port_in_use_message(options["fake_port"], "the fake Bitrix24", "--fake-port")
            ) from None
        self.member_id = ""
        try:
            self.stdout.write(f"Fake Bitrix24 on {fake.url} (OAuth and REST)")
            if options["api"] == "v2":
                self._v2(fake, steps, options)
            elif options["serve"]:
                port = options["serve"]
                with served_project(fake, port):
                    self.stdout.write(
                        f"Bot served on http://127.0.0.1:{port}/ (stopped at the end)"
                    )
                    url = f"http://127.0.0.1:{port}/imbot/events/"
                    self._run(fake, url, steps, options)
            else:
                self._run(fake, options["url"], steps, options)
        finally:
            fake.stop()
            if self.member_id and not options["keep"]:
                self._forget()

    def _v2(self, fake: FakeBitrix24, steps: list[Step], options: Any) -> None:
        simulation = V2Simulation(fake, self.stdout.write, options["wait"])
        try:
            if options["mode"] == FETCH:
                with in_process_settings(fake):
                    simulation.run(FETCH, steps)
            elif options["serve"]:
                port = options["serve"]
                with served_project(fake, port):
                    self.stdout.write(
                        f"Bot served on http://127.0.0.1:{port}/ (stopped at the end)"
                    )
                    simulation.run(options["mode"], steps, f"http://127.0.0.1:{port}/imbot/events/")
            else:
                simulation.run(options["mode"], steps, options["url"])
        finally:
            if not options["keep"] and simulation.forget():
                self.stdout.write("Removed the simulated portal (use --keep to keep it)")

    def _run(self, fake: FakeBitrix24, url: str, steps: list[Step], options: Any) -> None:
        factory = self._install(fake, url)
        try:
            self._conversation(fake, factory, url, steps, options["wait"])
        finally:
            if not options["keep"]:
                # What a real portal says when the app is removed with its data: the app
                # stops counting it as installed, wherever its database is.
                with contextlib.suppress(CommandError):
                    self._post(url, factory.uninstall(clean=True))

    def _forget(self) -> None:
        try:
            removed = forget_portals([self.member_id])
        except DatabaseError:  # the bot runs elsewhere, on a database not set up here
            return
        if removed:
            self.stdout.write("Removed the simulated portal (use --keep to keep it)")

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
                "(or use --serve PORT, or run `make demo`)."
            )
        self.member_id = member_id
        self.stdout.write(self.style.SUCCESS(f"  installed (event {answer.json()['event_id']})"))
        self._bots(fake, factory)
        return factory

    def _bots(self, fake: FakeBitrix24, factory: EventFactory) -> None:
        """The bots the app registered on install (code -> id), or a demo bot if none."""
        deadline = time.monotonic() + 5
        while not fake.bots(factory.member_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        registered = fake.bots(factory.member_id)
        self.bot_ids = {str(bot["CODE"]): bot_id for bot_id, bot in registered.items()}
        for code, bot_id in self.bot_ids.items():
            self.stdout.write(f"  the app registered bot {code} (#{bot_id})")
        if not self.bot_ids:
            fake.add_bot(factory.member_id, factory.bot_id, factory.bot_code)
            self.bot_ids = {factory.bot_code: factory.bot_id}
            self.stdout.write(
                f"  no bot registered on install: using demo bot #{factory.bot_id} "
                "(the app registers its own with IMBOT_PUBLIC_URL set, or with --serve)"
            )
        factory.bot_code, factory.bot_id = next(iter(self.bot_ids.items()))

    def _command_id(self, fake: FakeBitrix24, factory: EventFactory, step: Step) -> int:
        """The COMMAND_ID Bitrix24 would send: the registered one, else one made up now."""
        registered = fake.commands(factory.member_id)
        for command_id, entry in registered.items():
            if entry["COMMAND"] == step.command:
                bot_ids = {bot_id: code for code, bot_id in self.bot_ids.items()}
                factory.bot_id = int(entry["BOT_ID"])
                factory.bot_code = bot_ids.get(factory.bot_id, factory.bot_code)
                return command_id
        factory.bot_code, factory.bot_id = next(iter(self.bot_ids.items()))
        if step.bot_code in self.bot_ids:
            factory.bot_code, factory.bot_id = step.bot_code, self.bot_ids[step.bot_code]
        command_id = fake.next_id()
        fake.add_command(factory.member_id, factory.bot_id, step.command, command_id)
        return command_id

    def _payload(self, fake: FakeBitrix24, factory: EventFactory, step: Step) -> dict[str, Any]:
        if step.kind == COMMAND:
            command_id = self._command_id(fake, factory, step)
            return factory.command(
                step.command, step.text, command_id=command_id, chat_id=step.chat_id
            )
        factory.bot_code, factory.bot_id = next(iter(self.bot_ids.items()))
        if step.kind == JOIN:
            return factory.join(chat_id=step.chat_id)
        return factory.message(step.text, chat_id=step.chat_id)

    def _conversation(
        self, fake: FakeBitrix24, factory: EventFactory, url: str, steps: list[Step], wait: float
    ) -> None:
        failures = 0
        for step in steps:
            payload = self._payload(fake, factory, step)
            before = len(fake.calls)
            answer = self._post(url, payload)
            body = (
                answer.json()
                if answer.headers.get("Content-Type", "").startswith("application/json")
                else {}
            )
            self.stdout.write(
                f"-> {step.title} ({payload['event']}): {answer.status_code} "
                f"{body.get('status', '')}"
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
        return post_form(url, payload)

    @staticmethod
    def _answers(fake: FakeBitrix24, before: int, wait: float) -> list[tuple[str, str]]:
        """The bot's answering calls since ``before``, waiting up to ``wait`` s for the first."""
        deadline = time.monotonic() + wait
        while True:
            calls = [c for c in fake.calls[before:] if c.method in ANSWER_METHODS and c.token]
            if calls or time.monotonic() > deadline:
                return [(c.method, str(c.params.get("MESSAGE", ""))) for c in calls]
            time.sleep(0.05)
