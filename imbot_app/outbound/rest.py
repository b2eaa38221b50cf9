"""``RestClient``: calling Bitrix24's REST API for a portal, safely.

- One ``requests.Session`` per process (connection reuse), explicit timeouts, JSON bodies sent to
  the portal's *stored* ``client_endpoint``, never to one taken from an unauthenticated payload.
- The token set is the given user's Credential (a bot's, for bot calls), else the installer's.
- ``expired_token`` / ``invalid_token``: refresh once and retry.  Refresh tokens are single-use,
  so a refresh takes the Credential's row lock (``select_for_update``) and re-reads it: of many
  threads or processes that saw the same expired token, one refreshes and the rest use its
  result.  ``invalid_grant`` marks the portal as needing re-authorisation.
- Calls wait for the portal's leaky bucket (:mod:`imbot_app.outbound.ratelimit`);
``QUERY_LIMIT_EXCEEDED``
  and 429 are retried with exponential backoff and jitter, up to ``IMBOT_REST_MAX_RETRIES``.
- ``batch`` chunks commands into Bitrix24 ``batch`` calls of at most 50.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from django.db import connection, transaction
from django.db.models import F
from django.dispatch import Signal

from imbot_app import errors
from imbot_app.conf import imbot_settings
from imbot_app.logsafe import safe
from imbot_app.models import Credential, Portal
from imbot_app.outbound import authority
from imbot_app.outbound.ratelimit import LeakyBucket
from imbot_app.outbound.webhook import WebhookConfig, webhook_config
from imbot_app.wire import encode_form

logger = logging.getLogger("imbot_app.rest")

BATCH_LIMIT = 50

_local = threading.local()
_refresh_locks: dict[tuple[int, int], threading.Lock] = {}
_refresh_locks_guard = threading.Lock()


def http_session() -> requests.Session:
    """The process's session (one per thread: ``requests.Session`` is not thread-safe)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = "imbot_app"
        _local.session = session
    return session


def oauth_token_url(server_endpoint: str) -> str:
    """``https://oauth.bitrix.info/rest/`` -> ``https://oauth.bitrix.info/oauth/token/``."""
    parts = urlsplit(server_endpoint or "https://oauth.bitrix.info/rest/")
    return f"{parts.scheme}://{parts.netloc}/oauth/token/"


def host_of(url: str) -> str:
    """``https://user:pw@b24.example.com:8443/rest/1/SECRET/x?auth=T`` -> ``b24.example.com:8443``.

    What a network error may name: the host and port, never the path (an inbound webhook's
    secret), the query string (tokens) or credentials.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


@dataclass
class BatchResult:
    """Results of a batch by key; commands that failed are in ``errors`` instead."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, errors.BitrixError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class CallStats:
    """What one client did, for tests and benchmarks."""

    requests: int = 0
    retries: int = 0
    refreshes: int = 0
    waited: float = 0.0


class RestClient:
    """Calls Bitrix24 for one portal, as one Bitrix24 user (a bot, or the installer)."""

    def __init__(
        self, portal: Portal, user_id: int | None = None, *, max_retries: int | None = None
    ) -> None:
        self.portal = portal
        self.user_id = user_id
        # Retries of a rate-limited call (default IMBOT_REST_MAX_RETRIES); 0 for a caller with
        # its own backoff, such as the fetch poller.
        self.max_retries = max_retries
        self.stats = CallStats()
        rate = portal.rate_limit or float(imbot_settings.RATE_LIMIT)
        burst = portal.rate_burst or int(imbot_settings.RATE_BURST)
        # One slot of headroom: requests leave our bucket in order but reach Bitrix24's with
        # network jitter, and two arriving closer than 1/rate apart must not overflow it.
        self.bucket = LeakyBucket(portal.member_id, rate, max(1, burst - 1))

    # ------------------------------------------------------------------ public

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` and return its ``result``; raises a typed :class:`BitrixError`."""
        body = self._request(method, dict(params or {}))
        return body.get("result")

    def batch(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any] | None]], *, halt: bool = False
    ) -> BatchResult:
        """Run many calls in ``batch`` requests of at most 50; results and errors by key."""
        outcome = BatchResult()
        items = list(commands.items())
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            cmd = {}
            for key, (method, params) in chunk:
                sub = self._with_client_id(method, dict(params or {}))
                cmd[key] = method + (f"?{encode_form(sub)}" if sub else "")
            result = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd}) or {}
            values = result.get("result") or {}
            failures = result.get("result_error") or {}
            for key, (method, _) in chunk:
                failure = failures.get(key) if isinstance(failures, dict) else None
                if failure:
                    outcome.errors[key] = errors.from_response(
                        str(failure.get("error", "ERROR")),
                        str(failure.get("error_description", "")),
                        status=None,
                        method=method,
                    )
                elif isinstance(values, dict) and key in values:
                    outcome.results[key] = values[key]
            if halt and outcome.errors:
                break
        return outcome

    # ------------------------------------------------------------------ transport

    def _endpoint(self) -> str:
        endpoint = self.portal.client_endpoint
        if not endpoint:
            raise errors.PortalUnavailable(f"portal {self.portal} has no client endpoint")
        return endpoint if endpoint.endswith("/") else endpoint + "/"

    def _webhook(self) -> WebhookConfig | None:
        """The inbound webhook a webhook-mode portal is called through (``None`` otherwise)."""
        if not self.portal.webhook:
            return None
        config = webhook_config()
        if config is None or config.domain != self.portal.domain.lower():
            raise errors.PortalUnavailable(
                f"portal {self.portal} is in webhook mode but IMBOT_WEBHOOK_URL and "
                "IMBOT_WEBHOOK_CLIENT_ID do not name it"
            )
        return config

    def _with_client_id(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Webhook mode: v1 imbot methods must name the CLIENT_ID the bot was registered with.

        Chatbots 2.0 methods name the bot with its botToken instead (added by their callers).
        """
        v1 = method.startswith("imbot.") and not method.startswith("imbot.v2.")
        if self.portal.webhook and v1:
            config = self._webhook()
            assert config is not None
            return {**params, "CLIENT_ID": config.client_id}
        return params

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._check_portal()
        hook = self._webhook()
        credential = None if hook is not None else self.credential()
        refreshed = False
        attempt = 0
        retries = imbot_settings.REST_MAX_RETRIES if self.max_retries is None else self.max_retries
        while True:
            self.stats.waited += self.bucket.acquire()
            self.stats.requests += 1
            if credential is None:
                assert hook is not None  # no OAuth tokens: the webhook URL is the credential
                url, payload = hook.url + method, self._with_client_id(method, params)
            else:
                url = self._endpoint() + method
                payload = {**params, "auth": credential.access_token}
            status, body = self._post(url, method, payload)
            error = body.get("error") if isinstance(body, dict) else None
            if not error and 200 <= status < 300 and isinstance(body, dict):
                return body
            failure = errors.from_response(
                str(error or f"HTTP_{status}"),
                str(body.get("error_description", "")) if isinstance(body, dict) else "",
                status=status,
                method=method,
            )
            if isinstance(failure, errors.TokenInvalid) and credential and not refreshed:
                credential = self.refresh(credential)
                refreshed = True
                continue
            if isinstance(failure, errors.RateLimited) and attempt < retries:
                attempt += 1
                self.stats.retries += 1
                time.sleep(self._backoff(attempt))
                continue
            raise failure

    def _post(self, url: str, method: str, payload: dict[str, Any]) -> tuple[int, Any]:
        # Exceptions name their type and the host only: their text would hold the URL, which
        # in webhook mode is a secret.
        try:
            response = http_session().post(
                url,
                json=payload,
                timeout=imbot_settings.HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise errors.BitrixError(
                "NETWORK_ERROR", f"{type(exc).__name__} calling {host_of(url)}", method=method
            ) from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": f"HTTP_{response.status_code}"}

    @staticmethod
    def _backoff(attempt: int) -> float:
        base = float(imbot_settings.REST_BACKOFF)
        return float(min(30.0, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))  # noqa: S311

    # ------------------------------------------------------------------ tokens

    def _check_portal(self) -> None:
        status = self.portal.status
        if status == Portal.Status.UNINSTALLED:
            raise errors.PortalUnavailable(f"portal {self.portal} is uninstalled")
        if status == Portal.Status.REAUTH_REQUIRED:
            raise errors.ReauthorizationRequired(
                "invalid_grant", f"portal {self.portal} needs re-authorisation"
            )

    def credential(self) -> Credential:
        """The user's token set, falling back to the installer's."""
        wanted = [u for u in (self.user_id, self.portal.installer_user_id) if u is not None]
        rows = {
            c.user_id: c for c in Credential.objects.filter(portal=self.portal, user_id__in=wanted)
        }
        for user_id in wanted:
            if user_id in rows:
                return rows[user_id]
        raise errors.PortalUnavailable(
            f"no tokens for user {self.user_id} or the installer on portal {self.portal}"
        )

    def refresh(self, seen: Credential) -> Credential:
        """Exchange the refresh token for a new pair, once, however many callers ask at once."""
        from imbot_app.signals import token_refresh_failed, token_refreshed

        key = (seen.portal_id, seen.user_id)
        with _refresh_locks_guard:
            lock = _refresh_locks.setdefault(key, threading.Lock())
        with lock, transaction.atomic():
            if connection.vendor == "sqlite":
                # SQLite has no row locks: a write takes the database's write lock up front,
                # so a second process waits here instead of spending the same refresh token.
                Credential.objects.filter(pk=seen.pk).update(user_id=F("user_id"))
            current = Credential.objects.select_for_update().get(pk=seen.pk)
            if current.access_token != seen.access_token:
                return current  # another thread or process refreshed while we waited
            self.stats.refreshes += 1
            body = self._oauth_refresh(current)
            if "access_token" in body:
                current.access_token = str(body["access_token"])
                current.refresh_token = str(body.get("refresh_token") or current.refresh_token)
                expires = body.get("expires")
                current.expires_at = (
                    datetime.fromtimestamp(int(expires), tz=UTC) if expires else None
                )
                if body.get("scope"):
                    current.scope = str(body["scope"])[:1024]
                current.save()
                self._send_on_commit(token_refreshed, user_id=current.user_id)
                return current
            failure = errors.from_response(
                str(body.get("error", "invalid_grant")),
                str(body.get("error_description", "")),
                status=None,
                method="oauth",
            )
            logger.warning(
                "token refresh refused for user %s on %s: %s",
                seen.user_id,
                safe(str(self.portal)),
                safe(failure.error),
            )
            if isinstance(failure, errors.ReauthorizationRequired):
                Portal.objects.filter(pk=self.portal.pk).update(
                    status=Portal.Status.REAUTH_REQUIRED
                )
                self.portal.status = Portal.Status.REAUTH_REQUIRED
                self._send_on_commit(token_refresh_failed, user_id=seen.user_id, error=failure)
        # The portal's new status is committed; now tell the caller.
        raise failure

    def _send_on_commit(self, signal: Signal, **kwargs: Any) -> None:
        """Send ``signal`` for this portal once the refresh's transaction commits.

        Receivers then see the stored outcome, never one that is about to be rolled back.
        """
        transaction.on_commit(partial(signal.send, sender=RestClient, portal=self.portal, **kwargs))

    def _oauth_refresh(self, credential: Credential) -> dict[str, Any]:
        if not credential.refresh_token:
            return {"error": "invalid_grant", "error_description": "no refresh token stored"}
        # The client secret and the refresh token go only to an allow-listed OAuth server.
        server = authority.allowed_oauth_server(self.portal.server_endpoint)
        if server is None:
            raise errors.BitrixError(
                "OAUTH_SERVER_NOT_ALLOWED",
                f"portal {self.portal}'s server_endpoint is not in IMBOT_OAUTH_SERVERS",
                method="oauth",
            )
        token_url = oauth_token_url(server)
        try:
            response = http_session().get(
                token_url,
                params={
                    "grant_type": "refresh_token",
                    "client_id": imbot_settings.CLIENT_ID,
                    "client_secret": imbot_settings.CLIENT_SECRET,
                    "refresh_token": credential.refresh_token,
                },
                timeout=imbot_settings.HTTP_TIMEOUT,
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise errors.BitrixError(
                "NETWORK_ERROR",
                f"{type(exc).__name__} calling {host_of(token_url)}",
                method="oauth",
            ) from None
        return body if isinstance(body, dict) else {"error": "invalid_response"}
