"""``manage.py imbot_rotate_keys``: re-seal every sealed token under the newest key.

    manage.py imbot_rotate_keys            # re-encrypt, then report what is left
    manage.py imbot_rotate_keys --dry-run  # only count

Rotation: put a new key first in ``IMBOT_ENCRYPTION_KEYS`` (keep the old one after it), deploy,
run this command, and drop the old key once it reports nothing left under it.  Every model field
that is a :class:`~imbot_app.sealed_fields.SealedTextField` is covered, whatever the app.  A value
still stored in plaintext (from before the sealing migration) is sealed too.

Application-token digests cannot be re-made without their token; those under an older key are
re-made from the portal's next event and are only counted here.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from imbot_app import sealing
from imbot_app.management.commands._wording import plural
from imbot_app.sealed_fields import DigestField, SealedTextField

BATCH = 500


def _columns(kind: type) -> list[tuple[str, str, str]]:
    """(table, primary-key column, column) of every field of ``kind`` in the installed models."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, kind):
                pk = model._meta.pk
                assert pk is not None and pk.column is not None and field.column is not None
                found.append((model._meta.db_table, pk.column, field.column))
    return found


class Command(BaseCommand):
    help = "Re-encrypt every sealed token under the newest IMBOT_ENCRYPTION_KEYS key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        quote = connection.ops.quote_name
        total = 0
        for table, pk, column in _columns(SealedTextField):
            select = f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)}"  # noqa: S608
            update = f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s"  # noqa: S608
            with connection.cursor() as cursor:
                cursor.execute(select)
                rows = cursor.fetchall()
            stale = [(key, raw) for key, raw in rows if raw and sealing.needs_reseal(raw)]
            if not dry_run:
                for start in range(0, len(stale), BATCH):
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.executemany(
                            update,
                            [(sealing.reseal(r), key) for key, r in stale[start : start + BATCH]],
                        )
            total += len(stale)
            if stale:
                verb = "would re-seal" if dry_run else "re-sealed"
                self.stdout.write(f"{table}.{column}: {verb} {plural(len(stale), 'value')}")
        self.stdout.write(
            f"{plural(total, 'value')} {'to re-seal' if dry_run else 're-sealed'} under key "
            f"{sealing.keyring().newest.kid}"
        )
        self._report_digests()

    def _report_digests(self) -> None:
        quote = connection.ops.quote_name
        stale = 0
        for table, _pk, column in _columns(DigestField):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {quote(column)} FROM {quote(table)}")  # noqa: S608
                rows = cursor.fetchall()
            stale += sum(1 for (raw,) in rows if raw and sealing.digest_is_stale(raw))
        if stale:
            self.stdout.write(
                f"{plural(stale, 'application-token digest')} still under an older key: each is "
                "re-made from its portal's next event; keep the older key until this reads 0"
            )
        else:
            self.stdout.write("every application-token digest is under the newest key")
