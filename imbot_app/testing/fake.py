"""A fake Bitrix24: a real HTTP server on 127.0.0.1 answering like Bitrix24 does.

It plays both of Bitrix24's servers a bot talks to:

- the OAuth server: ``/oauth/token/`` (refresh with rotation: a refresh token works once, and the
  access token issued with it dies when it is spent) and ``/rest/app.info``;
- a portal's REST API: ``/rest/<method>`` for the ``imbot.*`` methods a bot uses, ``event.bind``
  / ``event.unbind`` / ``event.get`` and ``batch``, with the access token in ``auth`` (JSON body,
  form body or query string), and ``user.admin`` (is the token's user an administrator?).

Errors are Bitrix24's real payloads (``expired_token``, ``invalid_token``, ``invalid_grant``,
``QUERY_LIMIT_EXCEEDED``, ``MESSAGE_EMPTY``, ...).  Every call is recorded for assertions, and
faults can be injected: expire a token, throttle, fail the next calls (or the next calls of
one method, on one portal), or enforce the leaky bucket at a given rate.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imbot_app.testing.fake_faults import FaultInjection
from imbot_app.testing.fake_methods import ImbotMethods
from imbot_app.testing.fake_oauth import OAuthServer
from imbot_app.testing.fake_state import (
    Answer,
    FakePortal,
    FakeToken,
    Fault,
    QueuedServer,
    RecordedCall,
    error_answer,
)
from imbot_app.testing.fake_v2 import FakeV2
from imbot_app.wire import decode_form

__all__ = ["FakeBitrix24", "RecordedCall"]


class FakeBitrix24(OAuthServer, FaultInjection, ImbotMethods):
    """Bitrix24's OAuth server and REST API on ``http://127.0.0.1:<free port>``.

    ::

        with FakeBitrix24() as b24:
            access, refresh = b24.issue_tokens(member_id, user_id=1)
            ...                       # point the portal's endpoints at b24.rest_url
            assert b24.calls_to("imbot.message.add")
    """

    client_id = "local.imbot.test"
    client_secret = "fake-client-secret"  # noqa: S105 (the fake's own, published)

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        port: int = 0,
    ) -> None:
        self.port = port
        if client_id is not None:
            self.client_id = client_id
        if client_secret is not None:
            self.client_secret = client_secret
        self.calls: list[RecordedCall] = []
        self.installs: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, FakeToken] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> the access token issued with it
        self._portals: dict[str, FakePortal] = {}
        self._ids = itertools.count(1001)
        self._faults: list[Answer] = []
        self._webhooks: dict[tuple[int, str], str] = {}
        # (member_id, user_id) of the portals' administrators, for ``user.admin``.
        self.admins: set[tuple[str, int]] = set()
        self._method_faults: list[Fault] = []
        self._throttled = 0
        self._rate: tuple[float, int] | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.methods: dict[str, Callable[[FakePortal, FakeToken, dict[str, Any]], Answer]] = {
            "imbot.register": self._register,
            "imbot.update": self._update,
            "imbot.unregister": self._unregister,
            "imbot.bot.list": self._bot_list,
            "imbot.command.register": self._command_register,
            "imbot.command.update": self._command_update,
            "imbot.command.unregister": self._command_unregister,
            "imbot.command.answer": self._command_answer,
            "imbot.message.add": self._message_add,
            "imbot.message.update": self._message_update,
            "imbot.message.delete": self._message_delete,
            "imbot.chat.sendTyping": self._send_typing,
            "event.bind": self._event_bind,
            "event.unbind": self._event_unbind,
            "event.get": self._event_get,
        }
        # Chatbots 2.0 (imbot.v2.*), its state and test helpers: imbot_app.testing.fake_v2.
        self.v2 = FakeV2(self)
        self.methods.update(self.v2.methods())
        # Chatbots 2.0 (imbot.v2.*), its state and test helpers: imbot_app.testing.fake_v2.
        self.v2 = FakeV2(self)
        self.methods.update(self.v2.methods())

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBitrix24:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Answer in one segment, at once: no 40 ms Nagle/delayed-ACK stall per request.
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = QueuedServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBitrix24:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def rest_url(self) -> str:
        """Both ``auth[server_endpoint]`` and a portal's ``client_endpoint`` for this fake."""
        return f"{self.url}/rest/"

    # ------------------------------------------------------------------ state for tests

    def issue_tokens(
        self, member_id: str, user_id: int, *, domain: str = "example.bitrix24.com"
    ) -> tuple[str, str]:
        """A fresh (access token, refresh token) pair valid for ``user_id`` on ``member_id``."""
        with self._lock:
            self._portals.setdefault(member_id, FakePortal(member_id=member_id, domain=domain))
            access, refresh = secrets.token_hex(26), secrets.token_hex(26)
            self._tokens[access] = FakeToken(member_id, user_id, self.client_id, refresh)
            self._refresh[refresh] = access
            return access, refresh

    def add_install(
        self,
        *,
        member_id: str,
        client_id: str,
        access_token: str,
        domain: str = "",
        client_endpoint: str = "",
        user_id: int = 1,
        installed: bool = True,
        admin: bool = True,
    ) -> None:
        """Make ``app.info`` vouch that ``access_token`` is ``client_id`` installed on a portal.

        ``client_endpoint`` is the portal's REST address app.info reports (default
        ``https://<domain>/rest/``), ``user_id`` whose token it is, and ``installed`` whether
        the installation is finished (``False`` while an install page is still open).
        ``admin``: what ``user.admin`` answers for the token (only administrators install).
        """
        self.set_admin(member_id, user_id, admin)
        with self._lock:
            self.installs[access_token] = {
                "member_id": member_id,
                "client_id": client_id,
                "domain": domain or "example.bitrix24.com",
                "client_endpoint": client_endpoint,
                "user_id": user_id,
                "installed": installed,
            }

    def set_admin(self, member_id: str, user_id: int, admin: bool = True) -> None:
        """Make ``user.admin`` answer ``admin`` for ``user_id``'s tokens on the portal."""
        with self._lock:
            if admin:
                self.admins.add((member_id, user_id))
            else:
                self.admins.discard((member_id, user_id))

    def next_id(self) -> int:
        """A fresh id from the portal's one sequence (messages, bots and commands share it)."""
        with self._lock:
            return next(self._ids)

    def add_bot(self, member_id: str, bot_id: int, code: str, *, name: str = "") -> None:
        """A bot the portal already has (as if ``imbot.register`` had answered ``bot_id``)."""
        with self._lock:
            portal = self._portals.setdefault(
                member_id, FakePortal(member_id=member_id, domain="example.bitrix24.com")
            )
            portal.bots[bot_id] = {
                "ID": bot_id,
                "CODE": code,
                "TYPE": "B",
                "OPENLINE": "N",
                "PROPERTIES": {"NAME": name or code},
            }

    def add_command(self, member_id: str, bot_id: int, command: str, command_id: int) -> None:
        """A command the bot already has (as if ``imbot.command.register`` had run)."""
        with self._lock:
            self._portals[member_id].commands[command_id] = {
                "ID": command_id,
                "BOT_ID": bot_id,
                "COMMAND": command,
                "COMMON": "N",
                "HIDDEN": "N",
                "EXTRANET_SUPPORT": "N",
                "LANG": [{"LANGUAGE_ID": "en", "TITLE": command}],
            }

    def calls_to(self, method: str) -> list[RecordedCall]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    @property
    def refreshes(self) -> int:
        """How many refresh requests reached the OAuth endpoint."""
        return len(self.calls_to("oauth/token"))

    def bots(self, member_id: str) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._portals[member_id].bots)

    def commands(self, member_id: str) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._portals[member_id].commands)

    def messages(self, member_id: str) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._portals[member_id].messages)

    def bindings(self, member_id: str) -> list[tuple[str, str]]:
        """The portal's ``event.bind`` handlers: (EVENT, handler URL) pairs."""
        with self._lock:
            return list(self._portals[member_id].bindings)

    # ------------------------------------------------------------------ HTTP

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        params: dict[str, Any] = decode_form(parsed.query.encode()) if parsed.query else {}
        if raw:
            content_type = request.headers.get("Content-Type") or ""
            try:
                params.update(
                    json.loads(raw)
                    if content_type.startswith("application/json")
                    else decode_form(raw)
                )
            except ValueError:
                self._reply(request, *error_answer(400, "INVALID_REQUEST", "Body is not readable"))
                return
        path = parsed.path
        if path.rstrip("/") == "/oauth/token":
            status, body = self._oauth(params)
        elif path.startswith("/rest/"):
            status, body = self._rest(path.removeprefix("/rest/").strip("/"), params)
        else:
            status, body = error_answer(404, "NOT_FOUND", "Not found")
        self._reply(request, status, body)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # ------------------------------------------------------------------ OAuth

    def _rest(self, method: str, params: dict[str, Any]) -> Answer:
        token = params.pop("auth", None)
        hook = method.split("/")
        via_webhook = len(hook) == 3 and hook[0].isdigit()
        if via_webhook:
            method = hook[2]
        with self._lock:
            self.calls.append(RecordedCall(method, dict(params), token, webhook=via_webhook))
            if method == "app.info" and not via_webhook:
                return self._app_info(token)
            if method == "user.admin" and not via_webhook:
                return self._user_admin(token)
            if self._faults:
                return self._faults.pop(0)
            if self._throttled > 0:
                self._throttled -= 1
                return error_answer(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            if via_webhook:
                found = self._webhook_caller(int(hook[0]), hook[1], method, params)
                if isinstance(found, tuple):
                    return found
                info = found
            else:
                if not token:
                    return error_answer(401, "NO_AUTH_FOUND", "Wrong authorization data")
                known = self._tokens.get(str(token))
                if known is None:
                    return error_answer(401, "invalid_token", "Unable to get application by token")
                if known.expired:
                    return error_answer(
                        401, "expired_token", "The access token provided has expired."
                    )
                info = known
            portal = self._portals[info.member_id]
            if not self._take_slot(portal):
                return error_answer(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            fault = self._method_fault(method, info.member_id)
            if fault is not None:
                return fault
            if method == "batch":
                return self._batch(portal, info, params)
            handler = self.methods.get(method)
            if handler is None:
                return error_answer(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            return self._wrap(handler(portal, info, params))

    def _webhook_caller(
        self, user_id: int, code: str, method: str, params: dict[str, Any]
    ) -> FakeToken | Answer:
        """Who an inbound-webhook call acts as, or Bitrix24's refusal."""
        member_id = self._webhooks.get((user_id, code))
        if member_id is None:
            return error_answer(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        v2 = method.startswith("imbot.v2.")  # v2 names the bot's botToken instead
        if method.startswith("imbot.") and not v2 and not params.get("CLIENT_ID"):
            return error_answer(400, "ACCESS_DENIED", "Client ID not specified")
        return FakeToken(member_id, user_id, str(params.get("CLIENT_ID", "")), "", webhook=True)

    def add_webhook(
        self, member_id: str, *, user_id: int = 1, domain: str = "example.bitrix24.com"
    ) -> str:
        """An inbound webhook of ``user_id`` on the portal; returns its URL (a secret)."""
        code = secrets.token_hex(8)
        with self._lock:
            self._portals.setdefault(member_id, FakePortal(member_id=member_id, domain=domain))
            self._webhooks[(user_id, code)] = member_id
        return f"{self.url}/rest/{user_id}/{code}/"

    def _user_admin(self, token: Any) -> Answer:
        """``{"result": true|false}``: is the token's user an administrator of its portal?"""
        install = self.installs.get(str(token or ""))
        if install is not None:
            who = (str(install["member_id"]), int(install.get("user_id", 1)))
        else:
            info = self._tokens.get(str(token or ""))
            if info is None or info.expired:
                return error_answer(401, "invalid_token", "Unable to get application by token")
            who = (info.member_id, info.user_id)
        return self._wrap((200, {"result": who in self.admins}))

    @staticmethod
    def _wrap(answer: Answer) -> Answer:
        status, body = answer
        if status == 200:
            now = time.time()
            body = {"result": body["result"], "time": {"start": now, "finish": now, "duration": 0}}
        return status, body
