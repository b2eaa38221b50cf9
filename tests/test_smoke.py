from imbot_app.models import Event, Message
from imbot_app.testing import post_event


def test_private_message_is_accepted_and_stored(client, factory):
    response = post_event(client, factory.message("Hi there"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "accepted"
    event = Event.objects.get(pk=body["event_id"])
    assert event.name == "ONIMBOTMESSAGEADD"
    assert Message.objects.get().text == "Hi there"
