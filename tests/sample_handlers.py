"""A handler module named in IMBOT_HANDLER_MODULES by tests/test_dispatch.py."""

from __future__ import annotations

from typing import Any

from imbot_app import on_event


@on_event("ONSAMPLEEVENT")
def sample(event: Any) -> None:
    """Does nothing: the test only checks that importing the module registered it."""
