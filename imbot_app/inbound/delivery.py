"""What tells two deliveries apart: a keyed digest of everything a delivery carried.

Bitrix24 redelivers an event it got no answer for byte for byte, so an event without an id of
its own (install, update, uninstall, anything generic) is a duplicate only if *every* field is
the same, its secrets included: an ONAPPINSTALL in the same second as an earlier one but with a
new application token is a new installation, and must not be answered ``duplicate`` of the old.

The stored payload has its secrets redacted, so the digest is taken over the raw decoded
payload instead; it is an HMAC keyed from ``SECRET_KEY``, so the stored digest neither holds
the secrets nor lets anyone who reads the table test guesses of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from django.conf import settings


@lru_cache(maxsize=4)
def _key(secret_key: str) -> bytes:
    return hashlib.sha256(b"imbot_app.inbound.delivery:" + secret_key.encode("utf-8")).digest()


def delivery_digest(raw_payload: Any) -> str:
    """Hex HMAC-SHA256 of the canonical JSON of the raw (unredacted) payload."""
    canonical = json.dumps(
        raw_payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    key = _key(str(settings.SECRET_KEY))
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
