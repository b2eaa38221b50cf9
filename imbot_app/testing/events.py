"""Events built the way Bitrix24 sends them.

Events are dicts shaped like the examples on Bitrix24's reference pages (every value a string);
:mod:`imbot_app.testing.posting` sends them form-encoded, as Bitrix24's queue server does.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imbot_app import events as ev
from imbot_app.testing.portals import connect_portal, store_portal

__all__ = ["EventFactory"]

_ids = itertools.count(1000)


def _token() -> str:
    return secrets.token_hex(26)


@dataclass
class EventFactory:
    """Builds the events of one portal, shaped like Bitrix24's reference examples.

    Every builder returns a fresh dict; pass ``**overrides`` to replace top-level keys.
    """

    member_id: str = field(default_factory=lambda: secrets.token_hex(16))
    application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    domain: str = "example.bitrix24.com"
    server_endpoint: str = "https://oauth.bitrix.info/rest/"
    client_id: str = "local.imbot.test"
    bot_id: int = 1291
    bot_code: str = "echobot"
    user_id: int = 1269
    user_name: str = "John Smith"
    language: str = "en"
    # The chat id of the private dialog between the user and the bot (TO_CHAT_ID).
    private_chat_id: int = 2737
    # A running FakeBitrix24 the portal lives on: events then carry tokens valid there.
    fake: Any = field(default=None, repr=False)
    # Webhook mode: events carry this CLIENT_ID (top level and as the application token) and
    # no OAuth tokens, as Bitrix24 sends them to a bot registered through an inbound webhook.
    webhook_client_id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.webhook_client_id:
            self.application_token = self.webhook_client_id

    # ---------------------------------------------------------------- portal

    @classmethod
    def installed(cls, **kwargs: Any) -> EventFactory:
        """A factory whose portal is stored as installed (no ONAPPINSTALL round trip)."""
        factory = cls(**kwargs)
        factory.install_portal()
        return factory

    @classmethod
    def connected(
        cls, fake: Any, *, commands: Mapping[str, int] | None = None, **kwargs: Any
    ) -> EventFactory:
        """An installed portal living on ``fake``: its endpoints point there, the installer and
        the bot have Credentials the fake accepts (so ``RestClient`` calls work), and the fake
        knows the bot and its ``commands`` (word -> COMMAND_ID, default ``{"echo": 103}``)."""
        kwargs.setdefault("client_id", fake.client_id)
        factory = cls(server_endpoint=fake.rest_url, fake=fake, **kwargs)
        connect_portal(factory, fake, commands if commands is not None else {"echo": 103})
        return factory

    def install_portal(self) -> Any:
        """Store this factory's portal as installed (no ONAPPINSTALL round trip)."""
        return store_portal(self)

    @property
    def client_endpoint(self) -> str:
        if self.fake is not None:
            return str(self.fake.rest_url)
        return f"https://{self.domain}/rest/"

    def _new_id(self) -> int:
        """A message id; on a fake, from its own sequence, so replies never collide with it."""
        return int(self.fake.next_id()) if self.fake is not None else next(_ids)

    def _token_pair(self, user_id: int) -> tuple[str, str]:
        if self.fake is not None:
            access, refresh = self.fake.issue_tokens(self.member_id, user_id, domain=self.domain)
            return str(access), str(refresh)
        return _token(), _token()

    # ---------------------------------------------------------------- blocks

    def auth(self, user_id: int | None = None, *, tokens: bool = True) -> dict[str, Any]:
        """A top-level ``auth`` block for ``user_id`` (the human by default)."""
        if self.webhook_client_id:
            return {
                "domain": self.domain,
                "client_endpoint": f"https://{self.domain}/rest/",
                "server_endpoint": self.server_endpoint,
                "member_id": self.member_id,
                "application_token": self.webhook_client_id,
            }
        block: dict[str, Any] = {}
        user_id = self.user_id if user_id is None else user_id
        access, refresh = self._token_pair(user_id) if tokens else ("", "")
        if tokens:
            block.update(
                access_token=access,
                expires=str(int(time.time()) + 3600),
                expires_in="3600",
                scope="imbot",
            )
        block.update(
            domain=self.domain,
            server_endpoint=self.server_endpoint,
            status="F",
            client_endpoint=self.client_endpoint,
            member_id=self.member_id,
            user_id=str(user_id),
        )
        if tokens:
            block["refresh_token"] = refresh
        block["application_token"] = self.application_token
        return block

    def _bot_auth(self, bot_id: int) -> dict[str, Any]:
        if self.webhook_client_id:
            return {}  # webhook-mode bots get BOT_ID and BOT_CODE only
        block = self.auth(bot_id)
        block["client_id"] = self.client_id
        return block

    def bot_block(self, bot_id: int | None = None, code: str | None = None) -> dict[str, Any]:
        """``data[BOT]``: the addressed bot, keyed by its id, with its tokens."""
        bot_id = self.bot_id if bot_id is None else bot_id
        auth = self._bot_auth(bot_id)
        entry = {
            **auth,
            "AUTH": dict(auth),
            "BOT_ID": str(bot_id),
            "BOT_CODE": code or self.bot_code,
        }
        if not auth:
            del entry["AUTH"]
        return {str(bot_id): entry}

    def user_block(self, user_id: int | None = None, **fields: str) -> dict[str, str]:
        first, _, last = self.user_name.partition(" ")
        block = {
            "ID": str(self.user_id if user_id is None else user_id),
            "NAME": self.user_name,
            "FIRST_NAME": first,
            "LAST_NAME": last,
            "WORK_POSITION": "",
            "GENDER": "M",
            "IS_BOT": "N",
            "IS_CONNECTOR": "N",
            "IS_NETWORK": "N",
            "IS_EXTRANET": "N",
        }
        block.update(fields)
        return block

    def _params(
        self, message_id: int, text: str, chat_id: int | None, *, original: str | None = None
    ) -> dict[str, Any]:
        if chat_id is None:
            return {
                "MESSAGE": text,
                "TEMPLATE_ID": secrets.token_hex(8),
                "MESSAGE_TYPE": "P",
                "FROM_USER_ID": str(self.user_id),
                "DIALOG_ID": str(self.user_id),
                "TO_CHAT_ID": str(self.private_chat_id),
                "AUTHOR_ID": str(self.user_id),
                "SYSTEM": "N",
                "TO_USER_ID": str(self.bot_id),
                "SKIP_COMMAND": "N",
                "COMMAND_CONTEXT": "TEXTAREA",
                "MESSAGE_ID": str(message_id),
                "CHAT_TYPE": "P",
                "LANGUAGE": self.language,
            }
        mention = f"[USER={self.bot_id}]Bot[/USER]"
        return {
            "MESSAGE": text,
            "TEMPLATE_ID": secrets.token_hex(8),
            "MESSAGE_TYPE": "C",
            "FROM_USER_ID": str(self.user_id),
            "DIALOG_ID": f"chat{chat_id}",
            "TO_CHAT_ID": str(chat_id),
            "AUTHOR_ID": str(self.user_id),
            "SYSTEM": "N",
            "CHAT_ID": str(chat_id),
            "CHAT_TITLE": f"Chat {chat_id}",
            "CHAT_AUTHOR_ID": str(self.user_id),
            "CHAT_TYPE": "C",
            "CHAT_COLOR": "GREEN",
            "CHAT_ENTITY_TYPE": "THREAD",
            "CHAT_ENTITY_ID": "",
            "CHAT_EXTRANET": "N",
            "MENTIONED_LIST": {str(self.bot_id): str(self.bot_id)},
            "COMMAND_CONTEXT": "TEXTAREA",
            "MESSAGE_ORIGINAL": original if original is not None else f"{mention} {text}",
            "TO_USER_ID": str(self.bot_id),
            "MESSAGE_ID": str(message_id),
            "LANGUAGE": self.language,
        }

    def _envelope(self, name: str, data: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.webhook_client_id:
            payload["CLIENT_ID"] = self.webhook_client_id
        payload |= {
            "event": name,
            "event_handler_id": str(next(_ids)),
            "data": data,
            "ts": str(int(time.time())),
            "auth": self.auth(),
        }
        payload.update(overrides)
        return payload

    # ---------------------------------------------------------------- events

    def message(
        self,
        text: str = "Hello, bot",
        *,
        chat_id: int | None = None,
        message_id: int | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """ONIMBOTMESSAGEADD in a private chat, or in group ``chat_id`` with a mention."""
        message_id = self._new_id() if message_id is None else message_id
        data = {
            "BOT": self.bot_block(),
            "PARAMS": self._params(message_id, text, chat_id),
            "USER": self.user_block(),
        }
        return self._envelope(ev.MESSAGE_ADD, data, **overrides)

    def message_update(
        self, message_id: int, text: str, *, chat_id: int | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """ONIMBOTMESSAGEUPDATE: ``message_id`` now reads ``text``."""
        params = self._params(message_id, text, chat_id)
        params["ID"] = str(message_id)
        data = {"BOT": self.bot_block(), "PARAMS": params, "USER": self.user_block()}
        return self._envelope(ev.MESSAGE_UPDATE, data, **overrides)

    def message_delete(
        self, message_id: int, *, chat_id: int | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """ONIMBOTMESSAGEDELETE (the group variant has no USER block, as in the reference)."""
        params = self._params(message_id, "Message deleted", chat_id)
        params["ID"] = str(message_id)
        data: dict[str, Any] = {"BOT": self.bot_block(), "PARAMS": params}
        if chat_id is None:
            data["USER"] = self.user_block()
        return self._envelope(ev.MESSAGE_DELETE, data, **overrides)

    def command(
        self,
        command: str = "echo",
        params: str = "test",
        *,
        command_id: int = 103,
        context: str = "TEXTAREA",
        chat_id: int | None = None,
        message_id: int | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """ONIMCOMMANDADD: ``/command params`` typed (or clicked) in a chat."""
        message_id = self._new_id() if message_id is None else message_id
        text = f"/{command} {params}".rstrip()
        auth = self._bot_auth(self.bot_id)
        entry = {
            **auth,
            **({"AUTH": dict(auth)} if auth else {}),
            "BOT_ID": str(self.bot_id),
            "BOT_CODE": self.bot_code,
            "COMMAND": command,
            "COMMAND_ID": str(command_id),
            "COMMAND_PARAMS": params,
            "COMMAND_CONTEXT": context,
            "MESSAGE_ID": str(message_id),
        }
        page_params = self._params(message_id, text, chat_id, original=text)
        page_params.pop("MENTIONED_LIST", None)
        if chat_id is not None:
            page_params.pop("TO_USER_ID")
            page_params["BOT_IN_CHAT"] = {str(self.bot_id): str(self.bot_id)}
        first, _, last = self.user_name.partition(" ")
        user = {
            "ID": str(self.user_id),
            "NAME": self.user_name,
            "FIRST_NAME": first,
            "LAST_NAME": last,
            "GENDER": "M",
        }
        data = {"COMMAND": {str(command_id): entry}, "PARAMS": page_params, "USER": user}
        return self._envelope(ev.COMMAND_ADD, data, **overrides)

    def join(self, *, chat_id: int | None = None, **overrides: Any) -> dict[str, Any]:
        """ONIMBOTJOINCHAT: a user opened the dialog, or added the bot to ``chat_id``."""
        if chat_id is None:
            params = {
                "CHAT_TYPE": "P",
                "MESSAGE_TYPE": "P",
                "BOT_ID": str(self.bot_id),
                "USER_ID": str(self.user_id),
                "TO_USER_ID": str(self.user_id),
                "FROM_USER_ID": str(self.bot_id),
                "DIALOG_ID": str(self.user_id),
                "LANGUAGE": self.language,
            }
        else:
            params = {
                "CHAT_TYPE": "C",
                "MESSAGE_TYPE": "C",
                "BOT_ID": str(self.bot_id),
                "USER_ID": str(self.user_id),
                "CHAT_ID": str(chat_id),
                "CHAT_AUTHOR_ID": str(self.user_id),
                "CHAT_ENTITY_TYPE": "",
                "CHAT_ENTITY_ID": "",
                "ACCESS_HISTORY": "1",
                "DIALOG_ID": f"chat{chat_id}",
                "LANGUAGE": self.language,
            }
        data = {"BOT": self.bot_block(), "PARAMS": params, "USER": self.user_block()}
        auth = {"user_id": str(self.user_id), "application_token": self.application_token}
        auth.update(member_id=self.member_id, domain=self.domain)
        return self._envelope(ev.BOT_JOIN_CHAT, data, auth=auth, **overrides)

    def bot_delete(self, **overrides: Any) -> dict[str, Any]:
        """ONIMBOTDELETE for the factory's bot."""
        data = {"BOT_ID": str(self.bot_id), "BOT_CODE": self.bot_code}
        auth = self.auth()
        auth.pop("refresh_token")
        return self._envelope(ev.BOT_DELETE, data, auth=auth, **overrides)

    def install(self, **overrides: Any) -> dict[str, Any]:
        """ONAPPINSTALL with the installer's full token set (no event_handler_id, as sent)."""
        data = {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": self.language}
        payload = self._envelope(ev.APP_INSTALL, data, **overrides)
        payload.pop("event_handler_id", None)
        return payload

    def update(self, version: str = "2", **overrides: Any) -> dict[str, Any]:
        """ONAPPUPDATE from ``version - 1`` to ``version``."""
        data = {
            "VERSION": version,
            "PREVIOUS_VERSION": str(max(int(version) - 1, 1)) if version.isdigit() else "1",
            "LANGUAGE_ID": self.language,
        }
        return self._envelope(ev.APP_UPDATE, data, **overrides)

    def uninstall(self, *, clean: bool = False, **overrides: Any) -> dict[str, Any]:
        """ONAPPUNINSTALL: no tokens, only the application token to check."""
        data = {"LANGUAGE_ID": self.language, "CLEAN": "1" if clean else "0"}
        auth = {
            "domain": self.domain,
            "server_endpoint": self.server_endpoint,
            "client_endpoint": self.client_endpoint,
            "member_id": self.member_id,
            "application_token": self.application_token,
        }
        payload = self._envelope(ev.APP_UNINSTALL, data, auth=auth, **overrides)
        payload.pop("event_handler_id", None)
        return payload
