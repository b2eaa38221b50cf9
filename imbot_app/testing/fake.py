"""A fake Bitrix24: a real HTTP server on 127.0.0.1 answering like Bitrix24 does.

It plays both of Bitrix24's servers a bot talks to:

- the OAuth server: ``/oauth/token/`` (refresh with rotation: a refresh token works once, and the
  access token issued with it dies when it is spent) and ``/rest/app.info``;
- a portal's REST API: ``/rest/<method>`` for the ``imbot.*`` methods a bot uses, ``event.bind``
  / ``event.unbind`` / ``event.get`` and ``batch``, with the access token in ``auth`` (JSON body,
  form body or query string).

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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..wire import decode_form
from .fake_v2 import FakeV2

__all__ = ["FakeBitrix24", "RecordedCall"]

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class RecordedCall:
    """One request: the REST method (``oauth/token`` for refreshes) and its parameters."""

    method: str
    params: dict[str, Any]
    token: str | None
    in_batch: bool = False
    # Made through an inbound webhook URL (``/rest/<user id>/<code>/<method>``), not a token.
    webhook: bool = False


@dataclass
class _Token:
    member_id: str
    user_id: int
    client_id: str
    refresh_token: str
    expired: bool = False
    webhook: bool = False  # an inbound-webhook caller (v2 methods then need a botToken)


@dataclass
class _Portal:
    member_id: str
    domain: str
    bots: dict[int, dict[str, Any]] = field(default_factory=dict)
    commands: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    # event.bind: (EVENT, handler URL) pairs, in the order they were bound.
    bindings: list[tuple[str, str]] = field(default_factory=list)
    bucket_tat: float = 0.0


@dataclass
class _Fault:
    """An error a method answers, for one portal or all, ``count`` more times."""

    method: str
    member_id: str | None
    count: int
    answer: Answer


class _Server(ThreadingHTTPServer):
    # Many callers connect at once in the race tests; the default backlog of 5 drops some.
    request_queue_size = 128


def _by_id(rows: dict[int, dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The bot, command or message a call names by ``key`` (BOT_ID ...), if the portal has it."""
    try:
        return rows.get(int(p.get(key, 0)))
    except (TypeError, ValueError):
        return None


def _error(status: int, error: str, description: str) -> Answer:
    return status, {"error": error, "error_description": description}


def _flag(value: Any, default: str = "N") -> str:
    text = str(value if value is not None else default).upper()
    return "Y" if text in ("Y", "1", "TRUE") else "N"


class FakeBitrix24:
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
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> the access token issued with it
        self._portals: dict[str, _Portal] = {}
        self._ids = itertools.count(1001)
        self._faults: list[Answer] = []
        self._webhooks: dict[tuple[int, str], str] = {}
        self._method_faults: list[_Fault] = []
        self._throttled = 0
        self._rate: tuple[float, int] | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.methods: dict[str, Callable[[_Portal, _Token, dict[str, Any]], Answer]] = {
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

        self._server = _Server(("127.0.0.1", self.port), Handler)
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
            self._portals.setdefault(member_id, _Portal(member_id=member_id, domain=domain))
            access, refresh = secrets.token_hex(26), secrets.token_hex(26)
            self._tokens[access] = _Token(member_id, user_id, self.client_id, refresh)
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
    ) -> None:
        """Make ``app.info`` vouch that ``access_token`` is ``client_id`` installed on a portal.

        ``client_endpoint`` is the portal's REST address app.info reports (default
        ``https://<domain>/rest/``), ``user_id`` whose token it is, and ``installed`` whether
        the installation is finished (``False`` while an install page is still open).
        """
        with self._lock:
            self.installs[access_token] = {
                "member_id": member_id,
                "client_id": client_id,
                "domain": domain or "example.bitrix24.com",
                "client_endpoint": client_endpoint,
                "user_id": user_id,
                "installed": installed,
            }

    def next_id(self) -> int:
        """A fresh id from the portal's one sequence (messages, bots and commands share it)."""
        with self._lock:
            return next(self._ids)

    def add_bot(self, member_id: str, bot_id: int, code: str, *, name: str = "") -> None:
        """A bot the portal already has (as if ``imbot.register`` had answered ``bot_id``)."""
        with self._lock:
            portal = self._portals.setdefault(
                member_id, _Portal(member_id=member_id, domain="example.bitrix24.com")
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

    def expire(self, access_token: str | None = None) -> None:
        """Expire one access token, or every one issued so far."""
        with self._lock:
            for token, info in self._tokens.items():
                if access_token is None or token == access_token:
                    info.expired = True

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token stops working (the app was reinstalled elsewhere, say)."""
        with self._lock:
            self._refresh.clear()

    def fail_next(
        self,
        count: int = 1,
        *,
        error: str = "INTERNAL_SERVER_ERROR",
        description: str = "Internal server error",
        status: int = 500,
    ) -> None:
        """The next ``count`` REST calls answer this error."""
        with self._lock:
            self._faults.extend([_error(status, error, description)] * count)

    def fail_method(
        self,
        method: str,
        *,
        member_id: str | None = None,
        count: int = 1,
        error: str = "INTERNAL_SERVER_ERROR",
        description: str = "Internal server error",
        status: int = 500,
    ) -> None:
        """The next ``count`` calls of ``method`` (on one portal, or any) answer this error."""
        with self._lock:
            answer = _error(status, error, description)
            self._method_faults.append(_Fault(method, member_id, count, answer))

    def throttle(self, count: int) -> None:
        """The next ``count`` REST calls answer 503 ``QUERY_LIMIT_EXCEEDED``."""
        with self._lock:
            self._throttled += count

    def limit_rate(self, rate: float = 2.0, burst: int = 50) -> None:
        """Enforce Bitrix24's leaky bucket per portal: ``rate``/s with bursts of ``burst``."""
        with self._lock:
            self._rate = (rate, burst)

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
                self._reply(request, *_error(400, "INVALID_REQUEST", "Body is not readable"))
                return
        path = parsed.path
        if path.rstrip("/") == "/oauth/token":
            status, body = self._oauth(params)
        elif path.startswith("/rest/"):
            status, body = self._rest(path.removeprefix("/rest/").strip("/"), params)
        else:
            status, body = _error(404, "NOT_FOUND", "Not found")
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

    def _oauth(self, params: dict[str, Any]) -> Answer:
        with self._lock:
            self.calls.append(RecordedCall("oauth/token", dict(params), None))
            if params.get("grant_type") != "refresh_token":
                return _error(400, "invalid_request", "Unsupported grant_type")
            if (
                params.get("client_id") != self.client_id
                or params.get("client_secret") != self.client_secret
            ):
                return _error(401, "invalid_client", "Invalid client")
            old_access = self._refresh.pop(str(params.get("refresh_token", "")), None)
            if old_access is None:
                return _error(400, "invalid_grant", "Invalid grant")
            old = self._tokens.pop(old_access)
            portal = self._portals[old.member_id]
            access, refresh = self.issue_tokens(old.member_id, old.user_id, domain=portal.domain)
            return 200, {
                "access_token": access,
                "expires": int(time.time()) + 3600,
                "expires_in": 3600,
                "scope": "imbot,im",
                "domain": "oauth.bitrix.info",
                "server_endpoint": f"{self.url}/rest/",
                "status": "L",
                "client_endpoint": f"{self.url}/rest/",
                "member_id": old.member_id,
                "user_id": old.user_id,
                "refresh_token": refresh,
            }

    # ------------------------------------------------------------------ REST

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
            if self._faults:
                return self._faults.pop(0)
            if self._throttled > 0:
                self._throttled -= 1
                return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            if via_webhook:
                found = self._webhook_caller(int(hook[0]), hook[1], method, params)
                if isinstance(found, tuple):
                    return found
                info = found
            else:
                if not token:
                    return _error(401, "NO_AUTH_FOUND", "Wrong authorization data")
                known = self._tokens.get(str(token))
                if known is None:
                    return _error(401, "invalid_token", "Unable to get application by token")
                if known.expired:
                    return _error(401, "expired_token", "The access token provided has expired.")
                info = known
            portal = self._portals[info.member_id]
            if not self._take_slot(portal):
                return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            fault = self._method_fault(method, info.member_id)
            if fault is not None:
                return fault
            if method == "batch":
                return self._batch(portal, info, params)
            handler = self.methods.get(method)
            if handler is None:
                return _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            return self._wrap(handler(portal, info, params))

    def _method_fault(self, method: str, member_id: str) -> Answer | None:
        for fault in self._method_faults:
            if fault.method == method and fault.member_id in (None, member_id):
                fault.count -= 1
                if fault.count <= 0:
                    self._method_faults.remove(fault)
                return fault.answer
        return None

    def _webhook_caller(
        self, user_id: int, code: str, method: str, params: dict[str, Any]
    ) -> _Token | Answer:
        """Who an inbound-webhook call acts as, or Bitrix24's refusal."""
        member_id = self._webhooks.get((user_id, code))
        if member_id is None:
            return _error(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        v2 = method.startswith("imbot.v2.")  # v2 names the bot's botToken instead
        if method.startswith("imbot.") and not v2 and not params.get("CLIENT_ID"):
            return _error(400, "ACCESS_DENIED", "Client ID not specified")
        return _Token(member_id, user_id, str(params.get("CLIENT_ID", "")), "", webhook=True)

    def add_webhook(
        self, member_id: str, *, user_id: int = 1, domain: str = "example.bitrix24.com"
    ) -> str:
        """An inbound webhook of ``user_id`` on the portal; returns its URL (a secret)."""
        code = secrets.token_hex(8)
        with self._lock:
            self._portals.setdefault(member_id, _Portal(member_id=member_id, domain=domain))
            self._webhooks[(user_id, code)] = member_id
        return f"{self.url}/rest/{user_id}/{code}/"

    def _take_slot(self, portal: _Portal) -> bool:
        if self._rate is None:
            return True
        rate, burst = self._rate
        now = time.monotonic()
        interval = 1.0 / rate
        tat = max(portal.bucket_tat, now)
        if tat - now > (burst - 1) * interval:
            return False
        portal.bucket_tat = tat + interval
        return True

    @staticmethod
    def _wrap(answer: Answer) -> Answer:
        status, body = answer
        if status == 200:
            now = time.time()
            body = {"result": body["result"], "time": {"start": now, "finish": now, "duration": 0}}
        return status, body

    def _app_info(self, token: Any) -> Answer:
        install = self.installs.get(str(token or ""))
        if install is None:
            info = self._tokens.get(str(token or ""))
            if info is None or info.expired:
                return _error(401, "invalid_token", "Unable to get application by token")
            # A portal that lives on this fake: its REST API is the fake itself.
            install = {
                "member_id": info.member_id,
                "client_id": info.client_id,
                "domain": self._portals[info.member_id].domain,
                "client_endpoint": self.rest_url,
                "user_id": info.user_id,
            }
        domain = install["domain"]
        return 200, {
            "result": {
                "client_id": install["client_id"],
                "scope": "imbot,im",
                "install": {
                    "installed": install.get("installed", True),
                    "version": 1,
                    "status": "L",
                    "scope": "imbot,im",
                    "domain": domain,
                    "uri": f"https://{domain}",
                    "client_endpoint": install.get("client_endpoint") or f"https://{domain}/rest/",
                    "member_id": install["member_id"],
                    "member_type": "PORTAL",
                },
                "user_id": install.get("user_id", 1),
            },
            "time": {"start": time.time(), "finish": time.time(), "duration": 0.0},
        }

    def _batch(self, portal: _Portal, info: _Token, params: dict[str, Any]) -> Answer:
        commands = params.get("cmd") or {}
        if not isinstance(commands, dict):
            return _error(400, "INVALID_REQUEST", "cmd must be an object")
        if len(commands) > 50:
            return _error(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")) in ("1", "true", "Y")
        results: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            sub = decode_form(query.encode()) if query else {}
            self.calls.append(RecordedCall(method, dict(sub), None, in_batch=True))
            handler = self.methods.get(method)
            if method == "batch":
                status, body = _error(
                    405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                )
            elif handler is None:
                status, body = _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            else:
                status, body = handler(portal, info, sub)
            if status == 200:
                results[key] = body["result"]
            else:
                failures[key] = body
                if halt:
                    break
        return self._wrap(
            (
                200,
                {
                    "result": {
                        "result": results,
                        "result_error": failures,
                        "result_total": {},
                        "result_next": {},
                        "result_time": {},
                    }
                },
            )
        )

    # ------------------------------------------------------------------ imbot.*

    def _register(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        code = str(p.get("CODE", "")).strip()
        if not code:
            return _error(400, "CODE_ERROR", "Bot code is not specified")
        properties = p.get("PROPERTIES") or {}
        if not isinstance(properties, dict) or not (
            properties.get("NAME") or properties.get("LAST_NAME")
        ):
            return _error(400, "NAME_ERROR", "Bot name is not specified")
        handlers = {
            key: p.get(key) or p.get("EVENT_HANDLER")
            for key in (
                "EVENT_MESSAGE_ADD",
                "EVENT_WELCOME_MESSAGE",
                "EVENT_BOT_DELETE",
                "EVENT_MESSAGE_UPDATE",
                "EVENT_MESSAGE_DELETE",
            )
        }
        for required in ("EVENT_MESSAGE_ADD", "EVENT_WELCOME_MESSAGE", "EVENT_BOT_DELETE"):
            if not handlers[required]:
                return _error(400, f"{required}_ERROR", "Event handler is not specified")
        bot_type = str(p.get("TYPE") or "B").upper()
        openline = "Y" if bot_type == "O" else _flag(p.get("OPENLINE"))
        if bot_type in ("B", "H") and openline == "N":
            # Bitrix24 silently ignores these two for plain bots (bind them with imbot.update).
            handlers["EVENT_MESSAGE_UPDATE"] = None
            handlers["EVENT_MESSAGE_DELETE"] = None
        for bot_id, bot in portal.bots.items():
            if bot["CODE"] == code:
                return 200, {"result": bot_id}
        bot_id = next(self._ids)
        portal.bots[bot_id] = {
            "ID": bot_id,
            "CODE": code,
            "TYPE": bot_type,
            "OPENLINE": openline,
            "PROPERTIES": dict(properties),
            "CLIENT_ID": p.get("CLIENT_ID", ""),
            **handlers,
        }
        return 200, {"result": bot_id}

    def _update(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        bot = _by_id(portal.bots, p, "BOT_ID")
        if bot is None:
            return _error(400, "BOT_ID_ERROR", "Bot not found")
        fields = p.get("FIELDS")
        if not isinstance(fields, dict) or not fields:
            return _error(400, "WRONG_REQUEST", "Fields are not specified")
        for key, value in fields.items():
            if key == "PROPERTIES" and isinstance(value, dict):
                bot["PROPERTIES"].update(value)
            elif key in ("CODE",) or key.startswith("EVENT_"):
                bot[key] = value
        return 200, {"result": True}

    def _unregister(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        bot = _by_id(portal.bots, p, "BOT_ID")
        if bot is None:
            return _error(400, "BOT_ID_ERROR", "Bot not found")
        del portal.bots[bot["ID"]]
        for command_id in [c for c, cmd in portal.commands.items() if cmd["BOT_ID"] == bot["ID"]]:
            del portal.commands[command_id]
        return 200, {"result": True}

    def _bot_list(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        listed = {
            str(bot_id): {
                "ID": bot_id,
                "NAME": bot["PROPERTIES"].get("NAME", ""),
                "CODE": bot["CODE"],
                "OPENLINE": bot["OPENLINE"],
            }
            for bot_id, bot in portal.bots.items()
        }
        return 200, {"result": listed}

    def _command_register(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        bot = _by_id(portal.bots, p, "BOT_ID")
        if bot is None:
            return _error(400, "BOT_ID_ERROR", "Bot not found")
        word = str(p.get("COMMAND", "")).strip()
        if not word or not word.replace("_", "").isalnum():
            return _error(400, "COMMAND_ERROR", "Command text is not specified")
        if not p.get("EVENT_COMMAND_ADD"):
            return _error(
                400, "EVENT_COMMAND_ADD_ERROR", "Link to the event handler is not specified"
            )
        lang = p.get("LANG")
        if not lang:
            return _error(400, "LANG_ERROR", "Language phrases are not specified")
        for command_id, command in portal.commands.items():
            if command["BOT_ID"] == bot["ID"] and command["COMMAND"] == word:
                return 200, {"result": command_id}
        command_id = next(self._ids)
        portal.commands[command_id] = {
            "ID": command_id,
            "BOT_ID": bot["ID"],
            "COMMAND": word,
            "COMMON": _flag(p.get("COMMON")),
            "HIDDEN": _flag(p.get("HIDDEN")),
            "EXTRANET_SUPPORT": _flag(p.get("EXTRANET_SUPPORT")),
            "LANG": lang,
            "EVENT_COMMAND_ADD": p.get("EVENT_COMMAND_ADD"),
        }
        return 200, {"result": command_id}

    def _command_update(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        command = _by_id(portal.commands, p, "COMMAND_ID")
        if command is None:
            return _error(400, "COMMAND_ID_ERROR", "Command not found")
        fields = p.get("FIELDS")
        if not isinstance(fields, dict) or not fields:
            return _error(400, "WRONG_REQUEST", "Fields are not specified")
        # As Bitrix24's core: COMMON cannot be changed (only unregister and register again).
        for key in ("COMMAND", "EVENT_COMMAND_ADD", "HIDDEN", "EXTRANET_SUPPORT", "LANG"):
            if key in fields:
                command[key] = fields[key]
        return 200, {"result": True}

    def _command_unregister(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        command = _by_id(portal.commands, p, "COMMAND_ID")
        if command is None:
            return _error(400, "COMMAND_ID_ERROR", "Command not found")
        del portal.commands[command["ID"]]
        return 200, {"result": True}

    def _store_message(self, portal: _Portal, p: dict[str, Any], **extra: Any) -> Answer:
        text = str(p.get("MESSAGE") or "").strip()
        if not text and not p.get("ATTACH"):
            return _error(400, "MESSAGE_EMPTY", "Message text is empty")
        for part in ("ATTACH", "KEYBOARD", "MENU"):
            if part in p and len(json.dumps(p[part], ensure_ascii=False).encode()) > 30 * 1024:
                return _error(
                    400, f"{part}_OVERSIZE", "You have exceeded the maximum allowable size"
                )
        message_id = next(self._ids)
        portal.messages[message_id] = {
            "ID": message_id,
            "MESSAGE": text,
            **{k: p[k] for k in ("ATTACH", "KEYBOARD", "MENU", "DIALOG_ID", "BOT_ID") if k in p},
            **extra,
        }
        return 200, {"result": message_id}

    def _command_answer(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        if _by_id(portal.commands, p, "COMMAND_ID") is None and not p.get("COMMAND"):
            return _error(400, "COMMAND_ID_ERROR", "Command not found")
        if not p.get("MESSAGE_ID"):
            return _error(400, "MESSAGE_ID_ERROR", "Message ID can't be empty")
        return self._store_message(portal, p, ANSWER_TO=p.get("MESSAGE_ID"))

    def _message_add(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        if not p.get("DIALOG_ID") and not (p.get("FROM_USER_ID") and p.get("TO_USER_ID")):
            return _error(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        return self._store_message(portal, p)

    def _message_update(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        message = _by_id(portal.messages, p, "MESSAGE_ID")
        if message is None:
            return _error(400, "MESSAGE_ID_ERROR", "Message ID can't be empty")
        for key in ("MESSAGE", "ATTACH", "KEYBOARD", "MENU"):
            if key in p:
                message[key] = p[key]
        return 200, {"result": True}

    def _message_delete(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        message = _by_id(portal.messages, p, "MESSAGE_ID")
        if message is None:
            return _error(400, "MESSAGE_ID_ERROR", "Message ID can't be empty")
        del portal.messages[message["ID"]]
        return 200, {"result": True}

    def _send_typing(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        if not p.get("DIALOG_ID"):
            return _error(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
        return 200, {"result": True}

    # ------------------------------------------------------------------ event.*

    def _event_bind(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        event = str(p.get("event") or p.get("EVENT") or "").upper()
        handler = str(p.get("handler") or p.get("HANDLER") or "")
        if not event:
            return _error(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
        if not handler:
            return _error(400, "ERROR_HANDLER_NOT_FOUND", "Handler not found")
        if (event, handler) in portal.bindings:
            return _error(400, "ERROR_CORE", "Handler already binded")
        portal.bindings.append((event, handler))
        return 200, {"result": True}

    def _event_unbind(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        event = str(p.get("event") or p.get("EVENT") or "").upper()
        handler = str(p.get("handler") or p.get("HANDLER") or "")
        before = len(portal.bindings)
        portal.bindings[:] = [
            (e, h) for e, h in portal.bindings if not (e == event and handler in (h, ""))
        ]
        return 200, {"result": {"count": before - len(portal.bindings)}}

    def _event_get(self, portal: _Portal, info: _Token, p: dict[str, Any]) -> Answer:
        listed = [
            {"event": e, "handler": h, "auth_type": "0", "offline": 0} for e, h in portal.bindings
        ]
        return 200, {"result": listed}
