"""Shared fixtures: an installed portal's event factory, the fake Bitrix24, the corpus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imbot_app.dispatch.routing import Router, router
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

CORPUS_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture
def factory(db: None) -> EventFactory:
    """Events of a portal that is already installed (its Portal row exists)."""
    return EventFactory.installed()


@pytest.fixture
def fake_b24() -> Iterator[FakeBitrix24]:
    """A running fake Bitrix24 on 127.0.0.1."""
    with FakeBitrix24() as fake:
        yield fake


@pytest.fixture
def corpus_dir() -> Path:
    """../shared/corpus; tests that need it are skipped when it is absent."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"corpus folder {CORPUS_DIR} is absent")
    return CORPUS_DIR


@pytest.fixture(autouse=True)
def _forget_cached_bot_ids() -> Iterator[None]:
    """Test transactions roll back: ids a test saw must not leak into the next test."""
    from imbot_app.inbound.rows import bot_ids

    bot_ids.clear()
    yield
    bot_ids.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """SQLite: make sure the test database is a file, in this run's temporary folder if not.

    An in-memory test database cannot be opened by another process, and tests/test_celery.py
    runs a real Celery worker that must see the same database.  A file-based test name set
    by the settings is kept.  PostgreSQL needs nothing: its test database is reachable.
    """
    from django.db import connections

    settings = connections["default"].settings_dict
    if not settings["ENGINE"].endswith("sqlite3"):
        return
    test = settings.setdefault("TEST", {})
    name = str(test.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        test["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture
def isolated_routes() -> Iterator[Router]:
    """No routing handlers but the test's own.

    The earlier ones (the example project's) come back afterwards; whatever the test
    registered is gone.
    """
    with router.isolated():
        yield router


@pytest.fixture
def deliver(client: Any, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Post an event through the endpoint and run what its commit starts (the handlers).

    The test transaction never commits, so the on-commit callbacks are captured and run as
    the commit would run them.  Returns the response, after checking it is a 200.
    """

    def post(payload: dict[str, Any], **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, payload, **kwargs)
        assert response.status_code == 200, response.content
        return response

    return post


@pytest.fixture(autouse=True)
def _handlers_run_inline(settings: Any) -> None:
    """The example project runs handlers in imbot_worker; tests run them in the request.

    Tests of the worker and of Celery set ``IMBOT_DISPATCH`` themselves.
    """
    settings.IMBOT_DISPATCH = "inline"


@pytest.fixture(autouse=True)
def _replies_stay_offline(settings: Any) -> None:
    """No test reaches for a real portal: the example handlers' replies are only logged.

    Tests of real replies point a portal at :class:`FakeBitrix24` and set
    ``IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"`` themselves.
    """
    settings.IMBOT_SENDER = "imbot_app.outbound.calls.PendingSender"


@pytest.fixture(autouse=True)
def _registration_stays_offline(settings: Any) -> None:
    """No install or update a test delivers registers the example project's bots.

    Registration would call the portal's REST endpoint; tests of registration point a portal
    at :class:`FakeBitrix24` and set ``IMBOT_REGISTER_ON_INSTALL = True`` themselves.
    """
    settings.IMBOT_REGISTER_ON_INSTALL = False


@pytest.fixture(autouse=True)
def _fake_endpoints_allowed(settings: Any) -> None:
    """FakeBitrix24 serves REST on http://127.0.0.1: allow-list that host, as a local setup
    would (a portal's REST endpoint must otherwise be https on its own domain)."""
    settings.IMBOT_ENDPOINT_HOSTS = ["127.0.0.1"]
