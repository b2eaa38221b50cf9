"""Secrets at rest: OAuth tokens sealed with Fernet, application tokens kept as HMAC digests.

A database dump must not be a live key to every portal.  So:

* access and refresh tokens, which the app must send back to Bitrix24, are encrypted
  (:func:`seal` / :func:`unseal`, Fernet from ``cryptography``) with keys that live in settings,
  never in the database: ``IMBOT_ENCRYPTION_KEYS``, newest first.  Every key in the list still
  opens what it sealed (MultiFernet), so a new key can be put in front, ``manage.py
  imbot_rotate_keys`` run, and the old key dropped afterwards;
* application tokens (and a webhook-mode CLIENT_ID, which arrives in the same field) only ever
  need to be *compared*, so only an HMAC-SHA256 digest is kept (:func:`digest`), and
  :func:`token_matches` is the one place that compares a given token with it, in constant time.

Each configured key is any string (32+ random characters); the Fernet key, the digest key and a
short public key id are derived from it with HMAC-SHA256 under distinct labels, so one secret
serves all three without one revealing another.  Without ``IMBOT_ENCRYPTION_KEYS`` the single key
is Django's ``SECRET_KEY`` (a system check warns: rotating ``SECRET_KEY`` would then lock every
sealed token away).

Stored forms carry the id of the key that made them -- ``fernet:<kid>:<token>`` and
``hmac:<kid>:<hex>`` -- so the rotation command finds what an older key sealed without
decrypting, and a digest is checked with the key that made it (one HMAC per event).  A digest
cannot be re-made without the token, so one made under an older key is re-made from the token
of the portal's next authenticated event (:func:`digest_is_stale`); keep the older key until
``imbot_rotate_keys`` reports no such digest left.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from imbot_app.conf import imbot_settings

SEALED_PREFIX = "fernet:"
DIGEST_PREFIX = "hmac:"


class UnsealError(ValueError):
    """A sealed value no key in ``IMBOT_ENCRYPTION_KEYS`` opens (a key was dropped too soon)."""


class TokenDigest(str):
    """A stored digest, as read from the database: saved again as it is, never digested twice.

    A plain ``str`` assigned to a digest field is a token and gets digested on save; only a
    value of this type (which only :func:`digest` and the database produce) is taken as one.
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    fernet: Fernet
    digest_key: bytes


@dataclass(frozen=True, slots=True)
class Keyring:
    """The derived keys, newest first."""

    keys: tuple[_Key, ...]
    multi: MultiFernet

    @property
    def newest(self) -> _Key:
        return self.keys[0]

    def by_kid(self, kid: str) -> _Key | None:
        for key in self.keys:
            if key.kid == kid:
                return key
        return None


def _derive(material: str, label: bytes) -> bytes:
    return hmac.new(material.encode("utf-8"), label, hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _keyring(materials: tuple[str, ...]) -> Keyring:
    keys = tuple(
        _Key(
            kid=_derive(m, b"imbot_app.sealing.kid").hex()[:8],
            fernet=Fernet(base64.urlsafe_b64encode(_derive(m, b"imbot_app.sealing.fernet"))),
            digest_key=_derive(m, b"imbot_app.sealing.digest"),
        )
        for m in materials
    )
    return Keyring(keys=keys, multi=MultiFernet([k.fernet for k in keys]))


def key_materials() -> tuple[str, ...]:
    """``IMBOT_ENCRYPTION_KEYS`` as a tuple, or ``(SECRET_KEY,)`` when it is not set."""
    configured = imbot_settings.ENCRYPTION_KEYS
    if isinstance(configured, str) and configured:
        return (configured,)
    if configured:
        return tuple(str(k) for k in configured)
    return (str(settings.SECRET_KEY),)


def keyring() -> Keyring:
    """The keys of the current settings (derived once per distinct setting; a dict lookup)."""
    return _keyring(key_materials())


# --------------------------------------------------------------------------- encryption


def seal(plaintext: str) -> str:
    """``fernet:<kid>:<token>``: ``plaintext`` encrypted under the newest key."""
    key = keyring().newest
    token = key.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")
    return f"{SEALED_PREFIX}{key.kid}:{token}"


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def unseal(stored: str) -> str:
    """The plaintext of a sealed value; a value stored before sealing existed passes through.

    Raises :class:`UnsealError` (naming no value) when no configured key opens it.
    """
    if not is_sealed(stored):
        return stored
    _, _, token = stored[len(SEALED_PREFIX) :].partition(":")
    ring = keyring()
    try:
        return ring.multi.decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise UnsealError(
            "a sealed token cannot be opened with any key in IMBOT_ENCRYPTION_KEYS "
            "(was a key removed before manage.py imbot_rotate_keys ran?)"
        ) from None


def needs_reseal(stored: str) -> bool:
    """Stored in plaintext, or sealed under a key other than the newest."""
    if not stored:
        return False
    if not is_sealed(stored):
        return True
    kid = stored[len(SEALED_PREFIX) :].partition(":")[0]
    return kid != keyring().newest.kid


def reseal(stored: str) -> str:
    """The value sealed under the newest key (from plaintext, or from an older key's seal)."""
    return seal(unseal(stored))


# --------------------------------------------------------------------------- digests


def _hex(key: _Key, token: str) -> str:
    return hmac.new(key.digest_key, token.encode("utf-8"), hashlib.sha256).hexdigest()


def digest(token: str) -> TokenDigest:
    """``hmac:<kid>:<hex>``: what is stored instead of an application token."""
    key = keyring().newest
    return TokenDigest(f"{DIGEST_PREFIX}{key.kid}:{_hex(key, token)}")


def is_digest(stored: str) -> bool:
    return stored.startswith(DIGEST_PREFIX)


def token_matches(stored: str, given: str) -> bool:
    """Does ``given`` (from a request) match the ``stored`` digest?  Constant time; empty never.

    A stored value that is not a digest (a row the migration has not converted) never matches,
    nor does a digest made under a key no longer configured.
    """
    if not stored or not given or not is_digest(stored):
        return False
    kid, _, expected = stored[len(DIGEST_PREFIX) :].partition(":")
    key = keyring().by_kid(kid)
    if key is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), _hex(key, given).encode("utf-8"))


def digest_is_stale(stored: str) -> bool:
    """A digest made under a key other than the newest (re-made from the next matching token)."""
    if not stored or not is_digest(stored):
        return False
    return stored[len(DIGEST_PREFIX) :].partition(":")[0] != keyring().newest.kid
