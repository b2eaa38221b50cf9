"""Bad input at POST /imbot/events/: a clear 4xx JSON answer, nothing stored, never a 5xx.

Every refusal is ``{"error": <code>, "detail": ...}``.  Bodies that cannot be decoded, bodies
that are not an event, and envelopes of the wrong shape are 400; oversized bodies 413; other
content types 415; other methods 405.  An event that fails authentication is a generic 403
whose precise reason goes to the log only (never a token).  An authenticated known event with
invalid data is 400 ``invalid_event`` but is kept as an Event with status ``invalid``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client

from imbot_app.models import Bot, Chat, ChatUser, Credential, Event, Message, Portal
from imbot_app.sealing import token_matches
from imbot_app.testing import EVENTS_PATH, EventFactory, FakeBitrix24, encode_event, post_event

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


# --------------------------------------------------------------------------- helpers


def _post_raw(client: Client, body: bytes | str, content_type: str, **extra: Any) -> Any:
    return client.post(EVENTS_PATH, data=body, content_type=content_type, **extra)


def _refused(response: Any, status: int, error: str) -> dict[str, Any]:
    """Assert a JSON refusal with ``status`` and ``error``; return the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert body["error"] == error
    assert "detail" in body
    assert body["detail"]
    return body


def _detail_text(body: dict[str, Any]) -> str:
    detail = body["detail"]
    return detail if isinstance(detail, str) else json.dumps(detail)


def _nothing_stored() -> None:
    assert not Event.objects.exists()
    assert not Message.objects.exists()
    assert not Chat.objects.exists()
    assert not ChatUser.objects.exists()
    assert not Bot.objects.exists()
    assert not Credential.objects.exists()


def _tokens(payload: Any) -> set[str]:
    """Every token value in an event payload."""
    found: set[str] = set()
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key in ("access_token", "refresh_token", "application_token") and value:
                found.add(str(value))
            else:
                found |= _tokens(value)
    return found


# --------------------------------------------------------------------------- size


def test_body_over_limit_with_truthful_content_length_is_413(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    body = encode_event(factory.message("x" * 500)).encode()
    settings.IMBOT_MAX_BODY_BYTES = 300
    response = _post_raw(client, body, FORM)
    assert response.wsgi_request.META["CONTENT_LENGTH"] == str(len(body))
    body_json = _refused(response, 413, "body_too_large")
    assert "IMBOT_MAX_BODY_BYTES" in _detail_text(body_json)
    assert "300" in _detail_text(body_json)
    _nothing_stored()


def test_json_body_over_limit_is_413(client: Client, settings: Any, factory: EventFactory) -> None:
    body = json.dumps(factory.message("x" * 500))
    settings.IMBOT_MAX_BODY_BYTES = 300
    _refused(_post_raw(client, body, JSON), 413, "body_too_large")
    _nothing_stored()


def test_body_over_limit_with_overstated_content_length_is_413(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    """The limit is enforced on the bytes read, not on what the header claims."""
    body = encode_event(factory.message("x" * 500)).encode()
    settings.IMBOT_MAX_BODY_BYTES = 300
    response = _post_raw(client, body, FORM, CONTENT_LENGTH=str(len(body) * 1000))
    _refused(response, 413, "body_too_large")
    _nothing_stored()


def test_body_over_limit_with_understated_content_length_is_refused(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    """Only the announced bytes are read; the truncated rest is not an authenticated event."""
    body = encode_event(factory.message("x" * 500)).encode()
    settings.IMBOT_MAX_BODY_BYTES = 300
    response = _post_raw(client, body, FORM, CONTENT_LENGTH="200")
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) >= {"error", "detail"}
    _nothing_stored()


def test_body_without_content_length_is_not_read(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    """Without a Content-Length the WSGI body is not read at all: an empty body, 400."""
    body = encode_event(factory.message("x" * 500)).encode()
    settings.IMBOT_MAX_BODY_BYTES = 300
    response = _post_raw(client, body, FORM, CONTENT_LENGTH="")
    body_json = _refused(response, 400, "empty_body")
    assert "no event" in _detail_text(body_json)
    _nothing_stored()


def test_body_exactly_at_limit_is_accepted(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    body = encode_event(factory.message("hello")).encode()
    settings.IMBOT_MAX_BODY_BYTES = len(body)
    response = _post_raw(client, body, FORM)
    assert response.status_code == 200, response.content
    settings.IMBOT_MAX_BODY_BYTES = len(body) - 1
    _refused(_post_raw(client, body, FORM), 413, "body_too_large")
    assert Event.objects.count() == 1


# --------------------------------------------------------------------------- undecodable


@pytest.mark.parametrize(
    ("body", "error", "mention"),
    [
        pytest.param(b'{"event": "ONIMBOTMESSAGEADD",', "bad_json", "not valid JSON", id="cut"),
        pytest.param(b"{'event': 'X'}", "bad_json", "not valid JSON", id="single-quotes"),
        pytest.param(b'{"event": NaN}', "bad_json", "NaN", id="nan"),
        pytest.param(b'{"event": "X", "n": 1e400}', "bad_json", "out of range", id="1e400"),
        pytest.param(b'[{"event": "X"}]', "bad_json", "must be an object", id="array"),
        pytest.param(b'"ONIMBOTMESSAGEADD"', "bad_json", "must be an object", id="string"),
        pytest.param(b'{"event": "a\xff"}', "invalid_utf8", "UTF-8", id="raw-0xff"),
        pytest.param(b'{"event": "X", "m": "a\\u0000"}', "nul_character", "NUL", id="nul"),
        pytest.param(b"{}", "empty_body", "no event", id="empty-object"),
        pytest.param(b"", "empty_body", "no event", id="empty"),
        pytest.param(b'{"data": {"PARAMS": {}}}', "missing_event", "'event'", id="no-event"),
    ],
)
def test_bad_json_body_is_400(
    client: Client, factory: EventFactory, body: bytes, error: str, mention: str
) -> None:
    body_json = _refused(_post_raw(client, body, JSON), 400, error)
    assert mention in _detail_text(body_json)
    _nothing_stored()


@pytest.mark.parametrize(
    ("body", "error", "mention"),
    [
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&data%5Bx%5D=%zz",
            "bad_percent_encoding",
            "%zz",
            id="pct-zz-value",
        ),
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&data%zz=1",
            "bad_percent_encoding",
            "field name",
            id="pct-zz-name",
        ),
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&ts=1%", "bad_percent_encoding", "'ts'", id="pct-trailing"
        ),
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&ts=%4", "bad_percent_encoding", "percent", id="pct-short"
        ),
        pytest.param(b"event=ONIMBOTMESSAGEADD&ts=%FF", "invalid_utf8", "UTF-8", id="pct-ff"),
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&ts=\xff", "invalid_utf8", "UTF-8", id="raw-0xff-value"
        ),
        pytest.param(
            b"event=ONIMBOTMESSAGEADD&\xff=1", "invalid_utf8", "UTF-8", id="raw-0xff-name"
        ),
        pytest.param(b"event=%C3%28", "invalid_utf8", "'event'", id="bad-utf8-sequence"),
        pytest.param(b"event=X&data[PARAMS][MESSAGE]=a%00", "nul_character", "NUL", id="nul"),
        pytest.param(b"", "empty_body", "no event", id="empty"),
        pytest.param(b"&&&", "empty_body", "no event", id="only-separators"),
        pytest.param(
            b"data%5BPARAMS%5D%5BMESSAGE%5D=hi&ts=1", "missing_event", "'event'", id="no-event"
        ),
    ],
)
def test_bad_form_body_is_400(
    client: Client, factory: EventFactory, body: bytes, error: str, mention: str
) -> None:
    body_json = _refused(_post_raw(client, body, FORM), 400, error)
    assert mention in _detail_text(body_json)
    _nothing_stored()


def test_form_nested_deeper_than_16_levels_is_400(client: Client, factory: EventFactory) -> None:
    payload = factory.message("hi")
    too_deep = "a" + "[b]" * 16  # 17 levels
    body = encode_event(payload) + "&" + too_deep + "=1"
    body_json = _refused(_post_raw(client, body, FORM), 400, "too_deep")
    assert "deeper than 16 levels" in _detail_text(body_json)
    _nothing_stored()


def test_form_nested_exactly_16_levels_is_decoded(client: Client, factory: EventFactory) -> None:
    payload = factory.message("hi")
    body = encode_event(payload) + "&a" + "[b]" * 15 + "=1"
    response = _post_raw(client, body, FORM)
    assert response.status_code == 200, response.content


def test_json_nested_deeper_than_16_levels_is_400(client: Client, factory: EventFactory) -> None:
    payload = factory.message("hi")
    deep: Any = "leaf"
    for _ in range(17):
        deep = {"b": deep}
    payload["data"]["EXTRA"] = deep
    body_json = _refused(post_event(client, payload, as_json=True), 400, "too_deep")
    assert "deeper than 16 levels" in _detail_text(body_json)
    _nothing_stored()


def test_more_fields_than_max_fields_is_400(
    client: Client, settings: Any, factory: EventFactory
) -> None:
    payload = factory.message("hi")
    fields = encode_event(payload).count("&") + 1
    settings.IMBOT_MAX_FIELDS = fields - 1
    body_json = _refused(post_event(client, payload), 400, "too_many_fields")
    assert f"more than {fields - 1} fields" in _detail_text(body_json)
    _refused(post_event(client, payload, as_json=True), 400, "too_many_fields")
    _nothing_stored()
    settings.IMBOT_MAX_FIELDS = fields
    assert post_event(client, payload).status_code == 200


# --------------------------------------------------------------------------- transport


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"event=ONIMBOTMESSAGEADD"),
        ("application/xml", b"<event>ONIMBOTMESSAGEADD</event>"),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="event"\r\n\r\n'
            b"ONIMBOTMESSAGEADD\r\n--XyZ--\r\n",
        ),
    ],
)
def test_unsupported_content_type_is_415(
    client: Client, factory: EventFactory, content_type: str, body: bytes
) -> None:
    body_json = _refused(_post_raw(client, body, content_type), 415, "unsupported_media_type")
    assert content_type.split(";")[0] in _detail_text(body_json)
    _nothing_stored()


def test_multipart_event_from_the_test_client_is_415(client: Client, factory: EventFactory) -> None:
    payload = {"event": "ONIMBOTMESSAGEADD", "ts": "1"}
    response = client.post(EVENTS_PATH, payload)  # the client's default: multipart/form-data
    _refused(response, 415, "unsupported_media_type")
    _nothing_stored()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_405(client: Client, factory: EventFactory, method: str) -> None:
    response = getattr(client, method)(EVENTS_PATH)
    body_json = _refused(response, 405, "method_not_allowed")
    assert method.upper() in _detail_text(body_json)
    _nothing_stored()


# --------------------------------------------------------------------------- envelope


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("data", "PARAMS"),
        ("auth", "application_token"),
        ("event_handler_id", "abc"),
        ("event_handler_id", "9" * 30),
        ("event", ""),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_envelope_errors_are_400(
    client: Client, factory: EventFactory, field: str, value: str, as_json: bool
) -> None:
    payload = factory.message("hi")
    payload[field] = value
    body_json = _refused(post_event(client, payload, as_json=as_json), 400, "invalid_envelope")
    assert field in body_json["detail"]
    _nothing_stored()


def test_event_that_is_not_a_string_is_400(client: Client, factory: EventFactory) -> None:
    payload = factory.message("hi")
    payload["event"] = {"name": "ONIMBOTMESSAGEADD"}
    body_json = _refused(post_event(client, payload), 400, "invalid_envelope")
    assert "event" in body_json["detail"]
    _nothing_stored()


# --------------------------------------------------------------------------- invalid data


def _assert_kept_invalid(response: Any, name: str, factory: EventFactory) -> dict[str, Any]:
    body = _refused(response, 400, "invalid_event")
    event = Event.objects.get()
    assert body["event_id"] == event.pk
    assert event.name == name
    assert event.status == Event.Status.INVALID
    assert event.error
    assert event.portal == Portal.objects.get(member_id=factory.member_id)
    assert "[redacted]" in json.dumps(event.payload)
    assert not Message.objects.exists()
    return body


def test_message_without_dialog_id_is_kept_as_invalid(
    client: Client, factory: EventFactory
) -> None:
    payload = factory.message("keep me")
    del payload["data"]["PARAMS"]["DIALOG_ID"]
    body = _assert_kept_invalid(post_event(client, payload), "ONIMBOTMESSAGEADD", factory)
    assert body["detail"]["data"]["PARAMS"]["DIALOG_ID"]
    assert "DIALOG_ID" in Event.objects.get().error
    stored = Event.objects.get().payload
    assert stored["data"]["PARAMS"]["MESSAGE"] == "keep me"
    assert not Chat.objects.exists()


def test_bot_delete_with_non_numeric_bot_id_is_kept_as_invalid(
    client: Client, factory: EventFactory
) -> None:
    payload = factory.bot_delete()
    payload["data"]["BOT_ID"] = "abc"
    body = _assert_kept_invalid(post_event(client, payload), "ONIMBOTDELETE", factory)
    assert body["detail"]["data"]["BOT_ID"]
    assert not Bot.objects.exists()


@pytest.mark.parametrize(
    "where",
    ["MESSAGE_ID", "CHAT_ID", "AUTHOR_ID", "USER.ID", "BOT_ID", "CHAT_USER_COUNT"],
)
def test_ids_out_of_range_are_kept_as_invalid(
    client: Client, factory: EventFactory, where: str
) -> None:
    """A number too large for the database is invalid input, not a server error."""
    payload = factory.message("hi", chat_id=77)
    data = payload["data"]
    huge = "9" * 30
    if where == "USER.ID":
        data["USER"]["ID"] = huge
    elif where == "BOT_ID":
        data["BOT"][str(factory.bot_id)]["BOT_ID"] = huge
    else:
        data["PARAMS"][where] = huge
    _assert_kept_invalid(post_event(client, payload), "ONIMBOTMESSAGEADD", factory)


def test_bot_delete_with_huge_bot_id_is_kept_as_invalid(
    client: Client, factory: EventFactory
) -> None:
    payload = factory.bot_delete()
    payload["data"]["BOT_ID"] = "9" * 30
    _assert_kept_invalid(post_event(client, payload), "ONIMBOTDELETE", factory)
    assert not Bot.objects.exists()


def test_command_keyed_by_huge_id_is_kept_as_invalid(client: Client, factory: EventFactory) -> None:
    payload = factory.command("echo", "hi", command_id=103)
    entry = payload["data"]["COMMAND"].pop("103")
    del entry["COMMAND_ID"]
    payload["data"]["COMMAND"]["9" * 30] = entry
    _assert_kept_invalid(post_event(client, payload), "ONIMCOMMANDADD", factory)


def test_bot_keyed_by_huge_id_is_ignored(client: Client, factory: EventFactory) -> None:
    """A BOT entry whose key is no usable id is skipped, as one keyed by a word is."""
    payload = factory.message("hi")
    entry = payload["data"]["BOT"].pop(str(factory.bot_id))
    del entry["BOT_ID"]
    payload["data"]["BOT"]["9" * 30] = entry
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    assert not Bot.objects.exists()
    assert Message.objects.get().text == "hi"


def test_huge_auth_user_id_is_ignored_like_an_unreadable_one(
    client: Client, factory: EventFactory
) -> None:
    payload = factory.message("hi")
    payload["auth"]["user_id"] = "9" * 30
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    assert not Credential.objects.filter(user_id=factory.user_id).exists()


# --------------------------------------------------------------------------- authentication


def _assert_forbidden(response: Any, caplog: Any, reason: str, secrets: set[str]) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == {
        "error": "forbidden",
        "detail": "the event could not be authenticated",
    }
    refusals = [r.getMessage() for r in caplog.records if r.name == "imbot_app.views"]
    assert len(refusals) == 1
    assert reason in refusals[0]
    assert secrets
    for secret in secrets:
        assert secret not in caplog.text
    _nothing_stored()


def test_wrong_application_token_is_403(client: Client, caplog: Any, factory: EventFactory) -> None:
    payload = factory.message("hi")
    payload["auth"]["application_token"] = "f" * 32
    caplog.set_level(logging.INFO)
    response = post_event(client, payload)
    secrets = _tokens(payload) | {factory.application_token}
    _assert_forbidden(response, caplog, "wrong application_token", secrets)
    assert f"portal {factory.member_id}" in caplog.text


def test_unknown_member_id_is_403(client: Client, caplog: Any, factory: EventFactory) -> None:
    stranger = EventFactory()  # no Portal row
    payload = stranger.message("hi")
    caplog.set_level(logging.INFO)
    response = post_event(client, payload, as_json=True)
    _assert_forbidden(response, caplog, "unknown portal", _tokens(payload))
    assert stranger.member_id in caplog.text
    assert not Portal.objects.filter(member_id=stranger.member_id).exists()


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("auth", "no auth[member_id]"),
        ("member_id", "no auth[member_id]"),
        ("application_token", "no auth[application_token]"),
    ],
)
def test_missing_auth_is_403(
    client: Client, caplog: Any, factory: EventFactory, drop: str, reason: str
) -> None:
    payload = factory.message("hi")
    secrets = _tokens(payload) | {factory.application_token}
    if drop == "auth":
        del payload["auth"]
    else:
        del payload["auth"][drop]
    caplog.set_level(logging.INFO)
    _assert_forbidden(post_event(client, payload), caplog, reason, secrets)


def test_invalid_data_from_an_unauthenticated_sender_is_403_not_kept(
    client: Client, caplog: Any, factory: EventFactory
) -> None:
    payload = factory.message("hi")
    del payload["data"]["PARAMS"]["DIALOG_ID"]
    payload["auth"]["application_token"] = "0" * 32
    caplog.set_level(logging.INFO)
    response = post_event(client, payload)
    secrets = _tokens(payload) | {factory.application_token}
    _assert_forbidden(response, caplog, "wrong application_token", secrets)


def test_uninstalled_portal_is_403(client: Client, caplog: Any, factory: EventFactory) -> None:
    Portal.objects.filter(member_id=factory.member_id).update(status=Portal.Status.UNINSTALLED)
    payload = factory.message("hi")
    caplog.set_level(logging.INFO)
    response = post_event(client, payload)
    secrets = _tokens(payload) | {factory.application_token}
    _assert_forbidden(response, caplog, "is uninstalled", secrets)


def test_install_over_an_installed_portal_with_another_token_is_403(
    client: Client, caplog: Any, settings: Any, factory: EventFactory
) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    payload = factory.install()
    payload["auth"]["application_token"] = "e" * 32
    caplog.set_level(logging.INFO)
    response = post_event(client, payload)
    secrets = _tokens(payload) | {factory.application_token}
    _assert_forbidden(response, caplog, "different application_token", secrets)
    portal = Portal.objects.get(member_id=factory.member_id)
    assert token_matches(portal.application_token, factory.application_token)


def test_install_that_app_info_refuses_is_403(
    client: Client, caplog: Any, settings: Any, fake_b24: FakeBitrix24, db: None
) -> None:
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = "local.imbot.test"
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]
    events = EventFactory(server_endpoint=fake_b24.rest_url)
    payload = events.install()  # its access token is unknown to the fake: a forged install
    caplog.set_level(logging.INFO)
    response = post_event(client, payload)
    _assert_forbidden(response, caplog, "app.info refused", _tokens(payload))
    assert len(fake_b24.calls_to("app.info")) == 1
    assert not Portal.objects.exists()


@pytest.mark.parametrize(
    ("place", "error_path"),
    [("entry", ("BOT", "access_token")), ("AUTH copy", ("BOT", "AUTH", "access_token"))],
)
def test_malformed_token_in_a_bot_entry_is_kept_as_invalid(
    client: Client, factory: EventFactory, place: str, error_path: tuple[str, ...]
) -> None:
    payload = factory.message("hi")
    [entry] = payload["data"]["BOT"].values()
    target = entry if place == "entry" else entry["AUTH"]
    target["access_token"] = {"nested": "mapping"}
    body = _assert_kept_invalid(post_event(client, payload), "ONIMBOTMESSAGEADD", factory)
    errors = body["detail"]["data"]["BOT"][str(factory.bot_id)]
    for key in error_path[1:]:
        errors = errors[key]
    assert errors == ["Not a valid string."]
