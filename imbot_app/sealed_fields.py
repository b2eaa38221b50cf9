"""Model fields that keep secrets sealed in the database and plain in Python.

``credential.access_token`` reads and assigns plaintext as before; only the column holds the
sealed form (:mod:`imbot_app.sealing`).  Neither field supports lookups but ``isnull``: a
filter on a sealed or digested column could never match (Fernet is randomised, a digest is
keyed), and a prefix lookup such as ``__startswith`` would be an oracle on the stored value.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from imbot_app import sealing

_ALLOWED_LOOKUPS = frozenset({"isnull"})


class _NoLookups:
    """Refuse every lookup but ``isnull``: Django then raises FieldError ("unsupported lookup")."""

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name not in _ALLOWED_LOOKUPS:
            return None
        return super().get_lookup(lookup_name)  # type: ignore[misc]

    def get_transform(self, name: str) -> Any:
        return None


class SealedTextField(_NoLookups, models.TextField):
    """Plaintext in Python, ``fernet:<kid>:<token>`` in the column (the empty string stays empty).

    Sealing happens in ``get_prep_value``, so ``save()``, ``bulk_create`` (upserts included) and
    ``QuerySet.update`` all write the sealed form, while the instance keeps its plaintext.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return sealing.unseal(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return sealing.seal(value)


class DigestField(_NoLookups, models.CharField):
    """A token kept only as its HMAC digest (:func:`imbot_app.sealing.digest`).

    Assign the token itself; saving replaces the attribute with the digest (like ``auto_now``
    replaces a date), and compare with :func:`imbot_app.sealing.token_matches`.  A value read
    from the database is a :class:`~imbot_app.sealing.TokenDigest` and is saved unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 255)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str) and sealing.is_digest(value):
            return sealing.TokenDigest(value)
        return value  # a token stored before digests existed: digested when saved again

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = getattr(model_instance, self.attname)
        if value and not isinstance(value, sealing.TokenDigest):
            value = sealing.digest(str(value))
            setattr(model_instance, self.attname, value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value and not isinstance(value, sealing.TokenDigest):
            return sealing.digest(str(value))
        return value
