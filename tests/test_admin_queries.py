"""Every admin list and page costs the same number of queries with 1 row or with many.

Each check measures a page, adds rows that would show on it (more portals, chats, messages,
events, runs... or more related rows of the same object), measures again and expects the
same count: an N+1 would add queries with the rows.  A ceiling keeps the count itself honest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from imbot_app.dispatch.replay import replay_event
from imbot_app.models import (
    Bot,
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

MAX_QUERIES = 14  # session, user, and the page's own few


@pytest.fixture
def switch(isolated_routes: Any) -> Switch:
    switch = Switch(broken=True)  # failures too, so failed runs and tracebacks show
    connect_handlers(switch)
    return switch


@pytest.fixture
def grow(
    db: None, settings: Any, fake_b24: FakeBitrix24, switch: Switch, deliver: Any
) -> Callable[[], EventFactory]:
    """Adds a portal with a private and a group conversation: every table gets rows."""
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_CLIENT_SECRET = fake_b24.client_secret
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000

    def add() -> EventFactory:
        factory = connected_portal(fake_b24)
        talk(factory, deliver, ["hello", "/echo hi", "please fail"])
        talk(factory, deliver, ["group hello", "/echo there", "fail in group"], chat_id=40)
        return factory

    return add


def count_queries(client: Any, address: str) -> int:
    """Queries of one GET, after a first one warmed the process-wide ContentType cache."""
    client.get(address)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(address)
    assert response.status_code == 200, (address, response.status_code)
    return len(captured.captured_queries)


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:imbot_app_{name}", args=args)


CHANGELISTS = [
    "portal",
    "credential",
    "bot",
    "command",
    "chat",
    "chatuser",
    "message",
    "commandinvocation",
    "event",
    "handlerrun",
]


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_cost_the_same_with_more_rows(admin_client, grow, model) -> None:
    grow()
    address = url(f"{model}_changelist")
    few = count_queries(admin_client, address)
    grow()
    grow()
    many = count_queries(admin_client, address)
    assert many == few, f"{model}: {few} queries with one portal's rows, {many} with three"
    assert many <= MAX_QUERIES, many


@pytest.mark.parametrize(
    "query",
    [
        "?status__exact=failed",
        "?name=ONIMBOTMESSAGEADD&received_at__gte=2000-01-01+00%3A00%3A00%2B00%3A00",
        "?name=_other",
    ],
)
def test_filtered_event_list_costs_the_same(admin_client, grow, query) -> None:
    grow()
    few = count_queries(admin_client, url("event_changelist") + query)
    grow()
    grow()
    assert count_queries(admin_client, url("event_changelist") + query) == few


def test_filtered_message_list_costs_the_same(admin_client, grow, deliver) -> None:
    factory = grow()
    portal = Portal.objects.get(member_id=factory.member_id)
    chat = Message.objects.filter(portal=portal).select_related("chat").earliest("pk").chat
    query = f"?chat={chat.pk}&direction__exact=in&q=hello"
    few = count_queries(admin_client, url("message_changelist") + query)
    talk(factory, deliver, ["hello again", "and hello once more"])
    grow()
    assert count_queries(admin_client, url("message_changelist") + query) == few


def test_portal_page_costs_the_same_with_more_bots(admin_client, grow, deliver) -> None:
    factory = grow()
    portal = Portal.objects.get(member_id=factory.member_id)
    few = count_queries(admin_client, url("portal_change", portal.pk))
    for bot_id in (2001, 2002, 2003):
        deliver(replace(factory, bot_id=bot_id, bot_code=f"bot{bot_id}").message("hi"))
    assert Bot.objects.filter(portal=portal).count() == 4
    many = count_queries(admin_client, url("portal_change", portal.pk))
    assert many == few
    assert many <= MAX_QUERIES


def test_bot_page_costs_the_same_with_more_commands(admin_client, grow, deliver) -> None:
    factory = grow()
    bot = Bot.objects.get(portal__member_id=factory.member_id)
    few = count_queries(admin_client, url("bot_change", bot.pk))
    for command_id, word in ((105, "help"), (107, "weather"), (109, "remind")):
        deliver(factory.command(word, "", command_id=command_id))
    assert Command.objects.filter(bot=bot).count() == 4
    many = count_queries(admin_client, url("bot_change", bot.pk))
    assert many == few
    assert many <= MAX_QUERIES


def test_chat_page_costs_the_same_with_more_messages_and_people(
    admin_client, grow, deliver
) -> None:
    factory = grow()
    [first] = talk(factory, deliver, ["count me"], chat_id=55)
    chat = chat_of(first)
    few = count_queries(admin_client, url("chat_change", chat.pk))
    for user_id in (3001, 3002, 3003):
        someone = replace(factory, user_id=user_id, user_name=f"Person {user_id}")
        talk(someone, deliver, ["me too", "/echo and me"], chat_id=55)
    assert Message.objects.filter(chat=chat).count() == 14
    many = count_queries(admin_client, url("chat_change", chat.pk))
    assert many == few
    assert many <= MAX_QUERIES + 2  # the transcript: count, page, its invocations


def test_event_page_costs_the_same_with_more_runs(admin_client, grow) -> None:
    grow()
    event = Event.objects.filter(status="failed").earliest("pk")
    few = count_queries(admin_client, url("event_change", event.pk))
    for _ in range(3):
        replay_event(event.pk, force=True)
    assert HandlerRun.objects.filter(event=event).count() == 8
    many = count_queries(admin_client, url("event_change", event.pk))
    assert many == few
    assert many <= MAX_QUERIES


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (Credential, "credential"),
        (Command, "command"),
        (ChatUser, "chatuser"),
        (Message, "message"),
        (CommandInvocation, "commandinvocation"),
        (HandlerRun, "handlerrun"),
    ],
)
def test_other_pages_stay_small(admin_client, grow, model, name) -> None:
    grow()
    grow()
    row = model.objects.order_by("pk").last()
    assert count_queries(admin_client, url(f"{name}_change", row.pk)) <= MAX_QUERIES


def test_app_index_overview_costs_the_same(admin_client, grow) -> None:
    address = reverse("admin:app_list", args=["imbot_app"])
    grow()
    few = count_queries(admin_client, address)
    grow()
    grow()
    assert count_queries(admin_client, address) == few


def test_event_factory_variants_share_the_portal() -> None:
    """The helpers above rely on dataclasses.replace keeping the portal's identity."""
    factory = EventFactory(member_id="m", application_token="t")
    other = replace(factory, bot_id=5)
    assert (other.member_id, other.application_token, other.bot_id) == ("m", "t", 5)
