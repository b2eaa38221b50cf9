"""The public test kit: build events the way Bitrix24 sends them, post them, fake Bitrix24.

    from imbot_app.testing import EventFactory, FakeBitrix24, post_event

    def test_echo(client, db):
        events = EventFactory.installed()          # a Portal row with a known token
        response = post_event(client, events.command("echo", "hello"))
        assert response.json()["status"] == "accepted"

:class:`FakeBitrix24` is a real HTTP server on 127.0.0.1 that answers like Bitrix24's OAuth
server and REST API, so tests exercise real ``requests`` calls instead of mocks.
"""

from imbot_app.testing.events import EventFactory
from imbot_app.testing.events_v2 import V2Event, V2EventFactory
from imbot_app.testing.fake import FakeBitrix24, RecordedCall
from imbot_app.testing.posting import EVENTS_PATH, encode_event, post_event

__all__ = [
    "EVENTS_PATH",
    "EventFactory",
    "FakeBitrix24",
    "RecordedCall",
    "V2Event",
    "V2EventFactory",
    "encode_event",
    "post_event",
]
