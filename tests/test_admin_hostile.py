"""Hostile text in every field the admin shows: every page answers 200 and escapes it.

People's names, positions, chat titles, message text (with BB codes meant to smuggle links),
command parameters and the exception a handler raised about that text are all attacker
controlled.  Every list and change page of the app's models is fetched (also searched with
markup in ``q``) and must neither fail nor contain any of the markup unescaped.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.urls import NoReverseMatch, reverse

from imbot_app import on_message
from imbot_app.admin.bbcode import TRUNCATED
from imbot_app.dispatch.context import MessageContext
from imbot_app.models import ChatUser, HandlerRun, Message
from tests.admin_scenes import connected_portal

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_routes")]

XSS = "<img src=x onerror=alert(1)>\"'<script>alert(2)</script>\n\u202e"
UNESCAPED = ("<img src=x", "<script>alert", 'href="javascript', "href='javascript")


def admin_pages() -> list[str]:
    pages = []
    for model in apps.get_app_config("imbot_app").get_models():
        name = model._meta.model_name
        try:
            pages.append(reverse(f"admin:imbot_app_{name}_changelist"))
        except NoReverseMatch:  # not registered in the admin
            continue
        pages += [
            reverse(f"admin:imbot_app_{name}_change", args=[pk])
            for pk in model._default_manager.values_list("pk", flat=True)[:20]
        ]
    return pages


def test_every_admin_page_escapes_hostile_fields(
    admin_client: Any, fake_b24: Any, settings: Any, deliver: Any
) -> None:
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    live = connected_portal(fake_b24)

    @on_message
    def complains(message: MessageContext) -> None:
        raise ValueError(f"cannot handle {message.text}")

    live.user_name = XSS
    private = live.message(
        XSS + "[url=javascript:alert(3)]x[/url][url]javascript:alert(4)[/url]"
        "[user=1]" + XSS + "[/user][b]" * 40 + XSS
    )
    for field in ("FIRST_NAME", "LAST_NAME", "WORK_POSITION"):
        private["data"]["USER"][field] = XSS
    deliver(private)
    group = live.message(XSS, chat_id=991)
    group["data"]["PARAMS"]["CHAT_TITLE"] = XSS
    deliver(group)
    deliver(live.command("echo", XSS))
    assert ChatUser.objects.filter(
        name__contains="<script>", work_position__contains="<img"
    ).exists()
    assert Message.objects.filter(text__contains="<script>").exists()
    assert HandlerRun.objects.filter(error__contains="<script>").exists()

    pages = admin_pages()
    assert len(pages) > 15
    for page in pages:
        for query in ("", "?q=%3Cimg+src%3Dx"):
            response = admin_client.get(page + query)
            assert response.status_code == 200, page + query
            html = response.content.decode()
            for markup in UNESCAPED:
                assert markup not in html, (page + query, markup)


def test_lists_never_load_whole_payloads_or_texts(
    admin_client: Any, fake_b24: Any, settings: Any, deliver: Any
) -> None:
    # A text and a payload may each be IMBOT_MAX_BODY_BYTES: a list of 100 rows would load
    # 100 MB to show 80 characters of each.  Only the shown prefix leaves the database.
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_ADMIN_TEXT_LIMIT = 1000
    live = connected_portal(fake_b24)
    deliver(live.message("[b]big[/b] " + "x" * 5000))
    message = Message.objects.get(direction=Message.Direction.IN)

    messages = admin_client.get(reverse("admin:imbot_app_message_changelist"))
    [row] = messages.context["cl"].result_list
    assert {"text", "text_original"} <= row.get_deferred_fields()
    assert "[b]big[/b] xxxx" in messages.content.decode()  # the preview, from the prefix

    events = admin_client.get(reverse("admin:imbot_app_event_changelist"))
    [event] = events.context["cl"].result_list
    assert "payload" in event.get_deferred_fields()

    chat = admin_client.get(reverse("admin:imbot_app_chat_change", args=[message.chat_id]))
    [entry] = chat.context["transcript"].entries
    assert {"text", "text_original"} <= entry.message.get_deferred_fields()
    assert entry.html.startswith("<strong>big</strong> xxx")
    assert entry.html.endswith(TRUNCATED) and entry.html.count("x") == 1000 - len("[b]big[/b] ")
