"""PostgreSQL ``LISTEN``: an idle worker wakes when the endpoint commits an event.

One extra connection per worker process, in autocommit, that does nothing but listen on
``IMBOT_WORKER_CHANNEL``.  If it breaks (the database restarted), the worker falls back to
polling and tries to listen again a few seconds later: notifications only shorten the wait,
the table is the queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.db import connection

logger = logging.getLogger("imbot_app.worker")

RETRY_AFTER = 5.0


class Listener:
    """``wait(timeout)``: True as soon as a notification came, False after ``timeout``."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._conn: Any = None
        self._retry_at = 0.0

    @staticmethod
    def available() -> bool:
        return connection.vendor == "postgresql"

    def _connect(self) -> Any:
        from psycopg import sql

        conn = connection.get_new_connection(connection.get_connection_params())
        conn.autocommit = True
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        return conn

    def wait(self, timeout: float) -> bool:
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                time.sleep(timeout)
                return False
            try:
                self._conn = self._connect()
            except Exception as exc:
                return self._broken(exc, timeout)
        try:
            return bool(list(self._conn.notifies(timeout=timeout, stop_after=1)))
        except Exception as exc:
            return self._broken(exc, timeout)

    def _broken(self, exc: Exception, timeout: float) -> bool:
        logger.warning("LISTEN %s failed (%s); polling until it works again", self.channel, exc)
        self.close()
        self._retry_at = time.monotonic() + RETRY_AFTER
        time.sleep(timeout)
        return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
            self._conn = None
