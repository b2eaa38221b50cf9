"""The README's thirty-line example, read from README.md and run as written.

The handler module and the test are taken from the README's code blocks (by their first-line
file names), so the front door cannot drift from what works. The handlers are connected inside
``router.isolated()`` so the example project's own handlers stay out of it; the README's test
then runs with this suite's offline reply default undone (tests/conftest.py keeps replies off
the network) and handlers inline, as in a fresh project.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from imbot_app.dispatch.routing import router
from imbot_app.models import Message
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(first_line: str) -> str:
    """The README's ```python block whose first line is ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)\n```", README.read_text(), re.DOTALL)
    [block] = [block for block in blocks if block.splitlines()[0] == first_line]
    return block


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for command in ("make run", "make test", "make demo"):
        assert command in text
    for page in re.findall(r"\]\((docs/[^)]+\.md)\)", text):
        assert (README.parent / page).is_file(), page


@pytest.mark.django_db(transaction=True)  # so the handlers run after the commit
def test_the_readme_example_runs_as_written(client: Any, settings: Any) -> None:
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_DISPATCH = "inline"
    handlers = readme_block("# myapp/imbot_handlers.py")
    test_module = readme_block("# myapp/tests/test_bot.py")
    handler_namespace: dict[str, Any] = {"__name__": "myapp.imbot_handlers"}
    with router.isolated():
        exec(compile(handlers, "README: imbot_handlers.py", "exec"), handler_namespace)  # noqa: S102
        namespace: dict[str, Any] = {"__name__": "myapp.tests.test_bot"}
        exec(compile(test_module, "README: test_bot.py", "exec"), namespace)  # noqa: S102
        namespace["test_weather"](client, settings)
        assert Message.objects.get(direction="out").text == "No clouds over Berlin today."

        # The other handler, which `imbot_simulate --message "hi"` reaches.
        with FakeBitrix24() as b24:
            settings.IMBOT_CLIENT_ID = b24.client_id
            settings.IMBOT_CLIENT_SECRET = b24.client_secret
            post_event(client, EventFactory.connected(b24).message("hi there"))
            [reply] = b24.calls_to("imbot.message.add")
            assert reply.params["MESSAGE"] == "Hello! Try /weather Berlin"
