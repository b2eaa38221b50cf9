"""The event endpoint: ``POST /imbot/events/``.

decode (parsers) -> envelope (serializers) -> authenticate (auth) -> validate data
(serializers) -> store (store) -> 200 ``{"status": "accepted"|"duplicate", "event_id": N}``.

Chat-bot API v1 (``ONIMBOT*``) and Chatbots 2.0 (``ONIMBOTV2*``) events arrive here alike,
form-encoded or JSON: the registry picks the adapter by the event's name and its dedup rule
(:func:`imbot_app.protocol.dedup_for`; v2 posts once per bot, so its keys name the bot).

Bad input always gets a 4xx with a JSON body naming the problem; an event that fails
authentication gets a generic 403 and the reason goes to the log only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import OperationalError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.decorators import method_decorator
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.hooks import event_stored
from imbot_app.errors import InvalidPayload
from imbot_app.inbound.auth import AuthenticationFailed, authenticate
from imbot_app.inbound.parsers import LimitedJSONParser, PhpFormParser
from imbot_app.inbound.store import store_event
from imbot_app.logsafe import safe, safe_text
from imbot_app.models import Event
from imbot_app.protocol import dedup_for, parse_envelope, parse_event

logger = logging.getLogger("imbot_app.views")

FORBIDDEN_BODY = {"error": "forbidden", "detail": "the event could not be authenticated"}
UNAVAILABLE_BODY = {
    "error": "unavailable",
    "detail": "the database is busy or unreachable; the event was not stored, try again later",
}
RETRY_AFTER_SECONDS = 5


def _error_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped to ``{"error": code, "detail": ...}``."""
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException):
        codes = exc.get_codes()
        response.data = {
            "error": codes if isinstance(codes, str) else "invalid",
            "detail": response.data.get("detail", response.data)
            if isinstance(response.data, dict)
            else response.data,
        }
    return response


def stalled(event: Event) -> bool:
    """Still ``received`` and nobody holds its claim (free, or expired with a dead worker)."""
    expires = event.claim_expires_at
    return event.status == Event.Status.RECEIVED and (expires is None or expires <= timezone.now())


def client_address(request: HttpRequest) -> str | None:
    header = imbot_settings.CLIENT_IP_HEADER
    if header and request.META.get(header):
        # The last hop is the one our trusted proxy appended.
        return str(request.META[header]).split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR") or None


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class EventView(APIView):
    """Receives every Bitrix24 event for every portal.

    Not wrapped in ATOMIC_REQUESTS: the store runs its own transaction, so the event is
    committed (and its handlers started) before the answer goes out.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [PhpFormParser, LimitedJSONParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self) -> Any:
        return _error_handler

    def handle_exception(self, exc: Exception) -> Response:
        """A database that is locked (SQLite past its timeout) or unreachable is a condition of
        this server, not a bug and not bad input: 503 with Retry-After, and an ERROR line saying
        so.  Bitrix24 does not resend a failed delivery; fetch mode (v2) fetches it again."""
        if isinstance(exc, OperationalError):
            logger.error("event not stored, answered 503: database unavailable: %s", safe_text(exc))
            return Response(
                UNAVAILABLE_BODY,
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return super().handle_exception(exc)

    def post(self, request: Request) -> Response:
        payload = request.data
        if not isinstance(payload, dict) or not payload:
            return self._bad("empty_body", "the body holds no event")
        if "event" not in payload:
            return self._bad("missing_event", "the body has no 'event' field")
        try:
            envelope = parse_envelope(payload)
        except InvalidPayload as invalid:
            return self._bad("invalid_envelope", invalid.errors)
        try:
            authenticated = authenticate(envelope)
        except AuthenticationFailed as failure:
            logger.warning(
                "refused %s from %s: %s",
                safe(envelope.name),
                safe(client_address(request._request)),
                safe_text(failure.reason),
            )
            return Response(FORBIDDEN_BODY, status=status.HTTP_403_FORBIDDEN)
        try:
            event = parse_event(envelope)
        except InvalidPayload as invalid:
            return self._store_invalid(request, envelope, authenticated, invalid.errors)
        try:
            result = store_event(
                envelope,
                event,
                authenticated,
                client_address(request._request),
                on_commit=event_stored,
                dedup=dedup_for(envelope.name),
            )
        except AuthenticationFailed as failure:
            logger.warning("refused %s: %s", envelope.name, failure.reason)
            return Response(FORBIDDEN_BODY, status=status.HTTP_403_FORBIDDEN)
        if result.duplicate and stalled(result.event):
            # Its handlers never finished (a worker died): this copy starts them again.
            event_stored(result.event)
        return Response(
            {
                "status": "duplicate" if result.duplicate else "accepted",
                "event_id": result.event.pk,
            }
        )

    def _store_invalid(
        self, request: Request, envelope: Any, authenticated: Any, errors: Any
    ) -> Response:
        """Keep an authenticated event whose data is invalid, so nothing is lost, and say why."""
        body: dict[str, Any] = {"error": "invalid_event", "detail": errors}
        # (Not for an uninstalled portal: it only gets its ONAPPUNINSTALL's duplicate answered.)
        if authenticated.portal is not None and not authenticated.replay_only:
            result = store_event(
                envelope,
                None,
                authenticated,
                client_address(request._request),
                invalid_reason=json.dumps(errors, ensure_ascii=False),
                dedup=dedup_for(envelope.name),
            )
            body["event_id"] = result.event.pk
        logger.warning(
            "invalid %s kept as event %s: %s",
            safe(envelope.name),
            body.get("event_id"),
            safe_text(errors),
        )
        return Response(body, status=status.HTTP_400_BAD_REQUEST)

    @staticmethod
    def _bad(code: str, detail: Any) -> Response:
        return Response({"error": code, "detail": detail}, status=status.HTTP_400_BAD_REQUEST)
