"""What may reach a log line: untrusted values quoted and cut, URLs stripped of their secrets.

Two problems, one module:

* a value from a request (``member_id``, an install-page field, a domain) logged as it came
  could forge log lines with a newline or fill the disk with a 2 MB line.  :func:`safe` renders
  it with ``repr`` (newlines and control characters become escapes) cut to a bound;
* the HTTP library logs every request line at DEBUG (urllib3: ``"GET /oauth/token/?...
  &client_secret=...&refresh_token=... HTTP/1.1" 200``), and an inbound webhook's secret code
  is part of its path (``/rest/1/<code>/method``).  :class:`RedactUrlSecrets`, installed on the
  urllib3 loggers when the app starts (:func:`install_url_redaction`), rewrites those records,
  so "tokens are never logged" holds at every level, whatever handlers the project configures.

The OAuth refresh stays a GET with a query string: it is what Bitrix24 documents for
``oauth.bitrix.info/oauth/token/``, and nothing says the server accepts the same as a POST body.
"""

from __future__ import annotations

import logging
import re
from typing import Any

DEFAULT_LIMIT = 200

# Loggers of the HTTP stack that put request URLs in their messages.
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")

# key=value in a query string: the name stays (it helps debugging), the value goes.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'#]+=)[^&\s\"'#]*")
# /rest/<user id>/<code>/: an inbound webhook, whose code is the secret.
_WEBHOOK_CODE = re.compile(r"(/rest/\d+/)[^/\s\"'?#]+(/|\b)")
REDACTED = "[redacted]"


def safe(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters, saying how much was left out.

    Log an untrusted value as ``logger.warning("... %s", safe(value))``: the result holds no
    raw newline or control character, and its length is bounded whatever came in.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}...(+{len(value) - limit} chars)"
    text = repr(value)
    if len(text) > limit + 2:
        return f"{text[:limit]}...(+{len(text) - limit} chars)"
    return text


def safe_text(text: Any, limit: int = 500) -> str:
    """A message we composed around untrusted parts (an error's reason): control characters
    escaped as ``repr`` would, cut to ``limit`` characters, but without ``repr``'s quotes."""
    text = str(text)
    cut = len(text) - limit
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return f"{text}...(+{cut} chars)" if cut > 0 else text


def redact_url_secrets(text: str) -> str:
    """``text`` with query-string values and inbound-webhook codes replaced by [redacted]."""
    text = _QUERY_VALUE.sub(rf"\1{REDACTED}", text)
    return _WEBHOOK_CODE.sub(rf"\1{REDACTED}\2", text)


class RedactUrlSecrets(logging.Filter):
    """Rewrites a record's message with :func:`redact_url_secrets` (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = redact_url_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactUrlSecrets()


def install_url_redaction() -> None:
    """Attach the filter to the HTTP stack's loggers (once; called from ``AppConfig.ready``).

    A filter on a logger sees every record that logger creates before any handler does,
    including handlers on the root logger the record propagates to.
    """
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
