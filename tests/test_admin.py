"""The admin: what operators see of portals, chats, messages and events, and replay."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from imbot_app.admin import mask
from imbot_app.models import (
    Bot,
    Chat,
    ChatUser,
    Command,
    CommandInvocation,
    Credential,
    Event,
    HandlerRun,
    Message,
    Portal,
)
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.admin_scenes import Switch, chat_of, connect_handlers, connected_portal, talk


@pytest.fixture
def switch(isolated_routes: Any) -> Switch:
    switch = Switch()
    connect_handlers(switch)
    return switch


@pytest.fixture
def live(db: None, settings: Any, fake_b24: FakeBitrix24, switch: Switch) -> EventFactory:
    """A portal on the fake Bitrix24, with replies really sent and stored."""
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_CLIENT_SECRET = fake_b24.client_secret
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    return connected_portal(fake_b24)


# What DateFieldListFilter puts in the URL (an aware time), for any date field.
SINCE_2000 = "{}__gte=2000-01-01+00%3A00%3A00%2B00%3A00"


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:imbot_app_{name}", args=args)


def page(client: Client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200, (address, response.status_code)
    return response.content.decode()


def row(event: Event) -> str:
    """How a changelist links an event's row."""
    return f'href="{url("event_change", event.pk)}'


def transcript_texts(html: str) -> list[tuple[str, str]]:
    """(direction, text without markup) of each transcript entry, in page order."""
    entries = re.findall(
        r'data-direction="(in|out)">.*?<div class="imbot-text">(.*?)</div>', html, re.S
    )
    return [(direction, re.sub(r"<[^>]+>", "", text).strip()) for direction, text in entries]


# --------------------------------------------------------------------------- tokens


def test_no_page_or_form_shows_a_token(admin_client, live, deliver) -> None:
    talk(live, deliver, ["hello"])
    portal = Portal.objects.get(member_id=live.member_id)
    secrets = [portal.application_token, live.application_token]
    for credential in Credential.objects.filter(portal=portal):
        secrets += [credential.access_token, credential.refresh_token]
    assert all(len(s) >= 16 for s in secrets)
    pages = [
        url("portal_changelist"),
        url("portal_change", portal.pk),
        url("credential_changelist"),
        *(url("credential_change", c.pk) for c in Credential.objects.all()),
        *(url("event_change", e.pk) for e in Event.objects.all()),
    ]
    for address in pages:
        html = page(admin_client, address)
        for secret in secrets:
            assert secret not in html, address
    portal_page = page(admin_client, url("portal_change", portal.pk))
    assert mask(portal.application_token) in portal_page
    bot_credential = Credential.objects.get(portal=portal, user_id=live.bot_id)
    assert mask(bot_credential.access_token) in portal_page
    # No form field for any token, whatever its value.
    for address in (url("portal_change", portal.pk), url("credential_change", bot_credential.pk)):
        html = page(admin_client, address)
        assert not re.search(r'name="(application_token|access_token|refresh_token)"', html)


def test_saving_a_portal_keeps_its_token(admin_client, live) -> None:
    portal = Portal.objects.get(member_id=live.member_id)
    token = portal.application_token
    response = admin_client.post(
        url("portal_change", portal.pk),
        {
            "status": Portal.Status.REAUTH_REQUIRED,
            "language": "de",
            "rate_limit": "",
            "rate_burst": "",
            # The bots inline (read-only): no forms.
            "bots-TOTAL_FORMS": "0",
            "bots-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    portal.refresh_from_db()
    assert (portal.status, portal.language, portal.application_token) == (
        Portal.Status.REAUTH_REQUIRED,
        "de",
        token,
    )


def test_portal_list_and_page(admin_client, live, deliver) -> None:
    talk(live, deliver, ["hello"])
    portal = Portal.objects.get(member_id=live.member_id)
    portal.registration_error = "imbot.register: WRONG_REQUEST"
    portal.save()
    listing = page(admin_client, url("portal_changelist"))
    assert live.member_id in listing
    assert "registration failed" in listing
    assert f"echobot #{live.bot_id}" in listing
    detail = page(admin_client, url("portal_change", portal.pk))
    assert "imbot.register: WRONG_REQUEST" in detail
    assert "every credential of this portal" in detail


# --------------------------------------------------------------------------- bots


def test_bot_page_lists_its_commands(admin_client, live, deliver) -> None:
    talk(live, deliver, ["/echo hi"])
    bot = Bot.objects.get(bot_id=live.bot_id)
    html = page(admin_client, url("bot_change", bot.pk))
    assert "echo" in html
    listing = page(admin_client, url("bot_changelist"))
    assert "/echo" in listing
    command = Command.objects.get(command="echo")
    command_page = page(admin_client, url("command_change", command.pk))
    assert f"?command__id__exact={command.pk}" in command_page
    invocations = page(
        admin_client, url("commandinvocation_changelist") + f"?command__id__exact={command.pk}"
    )
    assert "/echo hi" in invocations


# --------------------------------------------------------------------------- chats


def test_chat_transcript_shows_both_directions_in_order(admin_client, live, deliver) -> None:
    texts = [f"question {n}" for n in range(1, 6)] + ["/echo repeat me"]
    events = talk(live, deliver, texts, chat_id=77)
    chat = chat_of(events[0])
    assert Message.objects.filter(chat=chat).count() == 12

    html = page(admin_client, url("chat_change", chat.pk))

    expected: list[tuple[str, str]] = []
    for text in texts[:-1]:
        # In a group chat the original text carries the bot's mention.
        expected += [("in", f"@Bot {text}"), ("out", f"you said: {text}")]
    expected += [("in", "/echo repeat me"), ("out", "repeat me")]
    assert transcript_texts(html) == expected
    assert "ran <code>/echo repeat me</code> (typed) by John Smith" in html
    assert "Transcript: 12 messages" in html
    # Each message links to its event; members are the people seen here.
    assert url("event_change", events[0].pk) in html
    person = ChatUser.objects.get(user_id=live.user_id)
    assert url("chatuser_change", person.pk) in html


def test_transcript_renders_bb_codes_and_never_raw_html(admin_client, live, deliver) -> None:
    [event] = talk(live, deliver, ['[b]bold[/b] <img src=x onerror="alert(1)"> [br]next'])
    html = page(admin_client, url("chat_change", chat_of(event).pk))
    assert "<strong>bold</strong> &lt;img src=x onerror=&quot;alert(1)&quot;&gt; <br>next" in html
    assert "<img src=x" not in html


def test_long_transcripts_are_paginated_latest_page_first(admin_client, live, deliver) -> None:
    events = talk(live, deliver, [f"m{n}" for n in range(30)])  # 60 messages, 50 a page
    chat = chat_of(events[0])
    last = page(admin_client, url("chat_change", chat.pk))
    assert [t for _, t in transcript_texts(last)][:2] == ["m25", "you said: m25"]
    assert len(transcript_texts(last)) == 10
    first = page(admin_client, url("chat_change", chat.pk) + "?transcript_page=1")
    assert [t for _, t in transcript_texts(first)][:2] == ["m0", "you said: m0"]
    assert len(transcript_texts(first)) == 50
    assert "?transcript_page=2#transcript" in first


def test_chat_list_filters_by_type(admin_client, live, deliver) -> None:
    talk(live, deliver, ["private"])
    talk(live, deliver, ["group"], chat_id=31)
    group = page(admin_client, url("chat_changelist") + "?type=C")
    assert "Chat 31" in group
    assert "?type=C" in group
    private = page(admin_client, url("chat_changelist") + "?type=P")
    assert "Chat 31" not in private


# --------------------------------------------------------------------------- messages


def test_message_list_search_and_filters(admin_client, live, deliver) -> None:
    [first] = talk(live, deliver, ["apples please"], chat_id=1)
    talk(live, deliver, ["bananas please"], chat_id=2)
    chat = chat_of(first)

    found = page(admin_client, url("message_changelist") + "?q=apples")
    assert "apples please" in found and "bananas please" not in found
    outgoing = page(admin_client, url("message_changelist") + "?direction__exact=out")
    assert "you said: apples please" in outgoing and ">apples please<" not in outgoing
    in_chat = page(admin_client, url("message_changelist") + f"?chat={chat.pk}")
    assert "apples please" in in_chat and "bananas" not in in_chat
    today = page(admin_client, url("message_changelist") + "?" + SINCE_2000.format("created_at"))
    assert "apples please" in today
    by_portal = page(
        admin_client,
        url("message_changelist") + f"?portal__id__exact={first.portal_id}&direction__exact=in",
    )
    assert "bananas please" in by_portal
    of_event = page(admin_client, url("message_changelist") + f"?event={first.pk}")
    assert "apples please" in of_event and "bananas" not in of_event
    assert (
        page(admin_client, url("message_changelist") + "?chat=nonsense").count("apples please") == 0
    )


def test_message_page_renders_its_text(admin_client, live, deliver) -> None:
    talk(live, deliver, ["[i]quietly[/i]"])
    message = Message.objects.get(direction=Message.Direction.IN)
    html = page(admin_client, url("message_change", message.pk))
    assert "<em>quietly</em>" in html


# --------------------------------------------------------------------------- events


def test_event_list_shows_status_badges_and_filters(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    [failed] = talk(live, deliver, ["please fail"])
    switch.broken = False
    [processed] = talk(live, deliver, ["fine"])
    assert (failed.status, processed.status) == ("failed", "processed")

    listing = page(admin_client, url("event_changelist"))
    assert 'class="imbot-badge imbot-badge-failed"' in listing
    assert 'class="imbot-badge imbot-badge-processed"' in listing
    only_failed = page(admin_client, url("event_changelist") + "?status__exact=failed")
    assert row(failed) in only_failed and row(processed) not in only_failed
    by_name = page(admin_client, url("event_changelist") + "?name=ONIMBOTMESSAGEADD")
    assert row(failed) in by_name
    other = page(admin_client, url("event_changelist") + "?name=_other")
    assert row(failed) not in other
    by_portal = page(
        admin_client, url("event_changelist") + f"?portal__id__exact={failed.portal_id}"
    )
    assert row(processed) in by_portal
    by_date = page(admin_client, url("event_changelist") + "?" + SINCE_2000.format("received_at"))
    assert row(processed) in by_date


def test_event_page_shows_payload_runs_and_traceback(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    [event] = talk(live, deliver, ["<fail>"])
    html = page(admin_client, url("event_change", event.pk))

    assert '<pre class="imbot-payload">' in html
    assert "&quot;MESSAGE&quot;: &quot;&lt;fail&gt;&quot;" in html  # pretty-printed, escaped
    assert "[redacted]" in html
    assert 'data-status="failed"' in html and 'data-status="succeeded"' in html
    assert "RuntimeError: the weather service is down" in html
    assert "Traceback (most recent call last)" in html
    assert 'id="imbot-replay"' in html


def test_handler_runs_are_paginated_on_the_event_page(admin_client, live, deliver) -> None:
    [event] = talk(live, deliver, ["again and again"])
    for _ in range(30):
        HandlerRun.objects.create(
            event=event, handler="tests.noise", status="succeeded", started_at=event.received_at
        )
    html = page(admin_client, url("event_change", event.pk))
    assert "Handler runs: 31" in html
    assert html.count('class="imbot-run ') == 25
    assert "?runs_page=2#handler-runs" in html
    second = page(admin_client, url("event_change", event.pk) + "?runs_page=2")
    assert second.count('class="imbot-run ') == 6


def test_handler_run_list_and_page(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    talk(live, deliver, ["fail now"])
    run = HandlerRun.objects.get(status="failed")
    listing = page(admin_client, url("handlerrun_changelist") + "?status__exact=failed")
    assert "tests.admin_scenes.connect_handlers.&lt;locals&gt;.flaky" in listing
    detail = page(admin_client, url("handlerrun_change", run.pk))
    assert "Traceback (most recent call last)" in detail


# --------------------------------------------------------------------------- replay


def test_replay_button_runs_the_handlers_again_and_reports(
    admin_client, live, deliver, switch
) -> None:
    switch.broken = True
    [event] = talk(live, deliver, ["fail please"])
    assert event.status == "failed"
    switch.broken = False  # the bug is fixed

    response = admin_client.post(url("event_replay", event.pk), follow=True)

    assert response.redirect_chain == [(url("event_change", event.pk), 302)]
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [f"Event #{event.pk} processed"]
    event.refresh_from_db()
    assert event.status == "processed"
    assert switch.calls == [event.pk, event.pk]
    # Forced: the reply handler ran again too, and answered a second time.
    assert Message.objects.filter(direction="out", event=event).count() == 2
    assert HandlerRun.objects.filter(event=event).count() == 4


def test_replay_button_reports_a_failure(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    [event] = talk(live, deliver, ["fail please"])
    response = admin_client.post(url("event_replay", event.pk), follow=True)
    [message] = list(response.context["messages"])
    assert message.level_tag == "error"
    assert str(message) == (
        f"Event #{event.pk} failed: tests.admin_scenes.connect_handlers.<locals>.flaky: "
        "RuntimeError: the weather service is down"
    )


def test_replay_button_needs_post_and_permission(client, live, deliver) -> None:
    [event] = talk(live, deliver, ["hi"])
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(viewer)
    html = page(client, url("event_change", event.pk))
    assert 'id="imbot-replay"' not in html
    assert client.post(url("event_replay", event.pk)).status_code == 403
    listing = page(client, url("event_changelist"))
    assert "replay_selected" not in listing

    viewer.user_permissions.add(Permission.objects.get(codename="replay_event"))
    viewer = User.objects.get(pk=viewer.pk)
    client.force_login(viewer)
    assert client.get(url("event_replay", event.pk)).status_code == 405
    assert 'id="imbot-replay"' in page(client, url("event_change", event.pk))
    assert client.post(url("event_replay", event.pk)).status_code == 302


def test_replay_action_asks_first_then_replays_each(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    failed = talk(live, deliver, ["fail 1", "fail 2"])
    switch.broken = False
    [fine] = talk(live, deliver, ["all good"])
    chosen = [*failed, fine]
    switch.broken = False

    confirm = admin_client.post(
        url("event_changelist"),
        {"action": "replay_selected", "_selected_action": [e.pk for e in chosen]},
    )
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Run the handlers of these 3 events again?" in html
    assert all(f"#{e.pk} ONIMBOTMESSAGEADD" in html for e in chosen)
    assert Event.objects.get(pk=failed[0].pk).status == "failed"  # nothing ran yet

    done = admin_client.post(
        url("event_changelist"),
        {
            "action": "replay_selected",
            "_selected_action": [e.pk for e in chosen],
            "confirm": "yes",
        },
        follow=True,
    )
    shown = [str(m) for m in done.context["messages"]]
    assert shown == [
        *(f"Event #{e.pk} processed" for e in sorted(chosen, key=lambda e: e.pk)),
        "Replayed 3 events: processed 3, failed 0, skipped 0",
    ]
    assert set(Event.objects.values_list("status", flat=True)) == {"processed"}


def test_replay_action_refuses_too_many(admin_client, live, deliver, monkeypatch) -> None:
    from imbot_app.admin import replaying

    monkeypatch.setattr(replaying, "MAX_EVENTS", 2)
    events = talk(live, deliver, ["a", "b", "c"])
    ids = [e.pk for e in events]
    confirm = admin_client.post(
        url("event_changelist"), {"action": "replay_selected", "_selected_action": ids}
    )
    html = confirm.content.decode()
    assert "3 events selected; the admin replays at most 2 at a time" in html
    assert 'name="confirm"' not in html
    forced = admin_client.post(
        url("event_changelist"),
        {"action": "replay_selected", "_selected_action": ids, "confirm": "yes"},
        follow=True,
    )
    [message] = [str(m) for m in forced.context["messages"]]
    assert message.startswith("3 events selected")
    assert HandlerRun.objects.count() == 3  # only the first deliveries ran


def test_invalid_events_are_skipped_with_a_reason(admin_client, factory) -> None:
    event = Event.objects.create(
        portal=Portal.objects.get(member_id=factory.member_id),
        name="ONIMBOTMESSAGEADD",
        status=Event.Status.INVALID,
        payload={"event": "ONIMBOTMESSAGEADD"},
        dedup_key="x",
    )
    response = admin_client.post(url("event_replay", event.pk), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        f"Event #{event.pk} skipped: invalid payload"
    ]


# --------------------------------------------------------------------------- overview


def test_app_index_draws_the_last_day(admin_client, live, deliver, switch) -> None:
    switch.broken = True
    talk(live, deliver, ["fail here", "ok"])
    html = page(admin_client, reverse("admin:app_list", args=["imbot_app"]))
    assert '<svg class="imbot-chart"' in html
    assert "<script" not in html.split('id="imbot-overview"')[1].split("</svg>")[0]
    hours = re.findall(r'data-events="(\d+)" data-failures="(\d+)"', html)
    assert len(hours) == 24
    assert hours[-1] == ("2", "1")
    assert sum(int(e) for e, _ in hours) == 2
    assert "<strong>2</strong> events received" in html
    assert "tests.admin_scenes.connect_handlers.&lt;locals&gt;.flaky" in html
    assert "Chats" in html and "Events" in html  # the models are still listed


def test_overview_is_hidden_from_users_who_may_not_see_events(client, db) -> None:
    user = User.objects.create_user("chats-only", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_chat"))
    client.force_login(user)
    html = page(client, reverse("admin:app_list", args=["imbot_app"]))
    assert '<svg class="imbot-chart"' not in html


def test_every_imbot_model_is_registered() -> None:
    from django.contrib import admin

    for model in (
        Portal,
        Credential,
        Bot,
        Command,
        Chat,
        ChatUser,
        Message,
        CommandInvocation,
        Event,
        HandlerRun,
    ):
        assert admin.site.is_registered(model), model
