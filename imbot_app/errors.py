"""Typed errors for talking to Bitrix24, each carrying Bitrix24's own ``error`` and description.

Handlers catch the class they can act on: :class:`ReauthorizationRequired` (a person must open
the application again), :class:`RateLimited` (retries ran out), :class:`BitrixError` for the rest.
"""

from __future__ import annotations

from typing import Any


class ImbotError(Exception):
    """Base of every error imbot_app raises on purpose."""


class PortalUnavailable(ImbotError):
    """The portal cannot be called: uninstalled, without tokens, or needing re-authorisation."""


class BitrixError(ImbotError):
    """Bitrix24 answered ``{"error": ..., "error_description": ...}``."""

    def __init__(
        self, error: str, description: str = "", *, status: int | None = None, method: str = ""
    ) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{error}" + (f" ({description})" if description else ""))


class TokenInvalid(BitrixError):
    """``expired_token`` / ``invalid_token``: the access token must be refreshed."""


class RateLimited(BitrixError):
    """``QUERY_LIMIT_EXCEEDED`` (503) or ``OPERATION_TIME_LIMIT`` (429) after every retry."""


class ReauthorizationRequired(BitrixError, PortalUnavailable):
    """``invalid_grant``: the refresh token is spent or revoked; the portal needs a new install."""


TOKEN_ERRORS = frozenset({"expired_token", "invalid_token"})
RATE_ERRORS = frozenset({"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"})


def from_response(error: str, description: str, *, status: int | None, method: str) -> BitrixError:
    """The typed error for a Bitrix24 error payload."""
    cls: type[BitrixError] = BitrixError
    if error in TOKEN_ERRORS:
        cls = TokenInvalid
    elif error in RATE_ERRORS or status == 429:
        cls = RateLimited
    elif error == "invalid_grant":
        cls = ReauthorizationRequired
    return cls(error, description, status=status, method=method)


class InvalidPayload(Exception):
    """The body decoded but does not hold a valid event; ``errors`` says which fields."""

    def __init__(self, errors: Any) -> None:
        super().__init__("invalid event payload")
        self.errors = errors
