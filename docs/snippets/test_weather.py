import pytest

from imbot_app.testing import EventFactory, FakeBitrix24, post_event


@pytest.mark.django_db(transaction=True)  # the handlers run after the commit
def test_weather_answers(client, settings):
    with FakeBitrix24() as b24:  # a real HTTP server on 127.0.0.1 playing Bitrix24
        settings.IMBOT_CLIENT_ID, settings.IMBOT_CLIENT_SECRET = b24.client_id, b24.client_secret
        events = EventFactory.connected(b24, commands={"weather": 7})
        post_event(client, events.command("weather", "Berlin", command_id=7))
        [answer] = b24.calls_to("imbot.command.answer")
        assert answer.params["MESSAGE"] == "No clouds over Berlin today."
