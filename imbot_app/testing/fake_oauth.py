"""The fake's OAuth server: token refresh with rotation, and ``app.info``."""

from __future__ import annotations

import time
from typing import Any

from imbot_app.testing.fake_state import (
    Answer,
    FakeShared,
    RecordedCall,
    error_answer,
)


class OAuthServer(FakeShared):
    """``/oauth/token/`` and ``app.info``, as Bitrix24's OAuth server answers them."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def rest_url(self) -> str:
        raise NotImplementedError

    def issue_tokens(
        self, member_id: str, user_id: int, *, domain: str = "example.bitrix24.com"
    ) -> tuple[str, str]:
        raise NotImplementedError

    def _oauth(self, params: dict[str, Any]) -> Answer:
        with self._lock:
            self.calls.append(RecordedCall("oauth/token", dict(params), None))
            if params.get("grant_type") != "refresh_token":
                return error_answer(400, "invalid_request", "Unsupported grant_type")
            if (
                params.get("client_id") != self.client_id
                or params.get("client_secret") != self.client_secret
            ):
                return error_answer(401, "invalid_client", "Invalid client")
            old_access = self._refresh.pop(str(params.get("refresh_token", "")), None)
            if old_access is None:
                return error_answer(400, "invalid_grant", "Invalid grant")
            old = self._tokens.pop(old_access)
            portal = self._portals[old.member_id]
            access, refresh = self.issue_tokens(old.member_id, old.user_id, domain=portal.domain)
            return 200, {
                "access_token": access,
                "expires": int(time.time()) + 3600,
                "expires_in": 3600,
                "scope": "imbot,im",
                "domain": "oauth.bitrix.info",
                "server_endpoint": f"{self.url}/rest/",
                "status": "L",
                "client_endpoint": f"{self.url}/rest/",
                "member_id": old.member_id,
                "user_id": old.user_id,
                "refresh_token": refresh,
            }

    # ------------------------------------------------------------------ REST

    def _app_info(self, token: Any) -> Answer:
        install = self.installs.get(str(token or ""))
        if install is None:
            info = self._tokens.get(str(token or ""))
            if info is None or info.expired:
                return error_answer(401, "invalid_token", "Unable to get application by token")
            # A portal that lives on this fake: its REST API is the fake itself.
            install = {
                "member_id": info.member_id,
                "client_id": info.client_id,
                "domain": self._portals[info.member_id].domain,
                "client_endpoint": self.rest_url,
                "user_id": info.user_id,
            }
        domain = install["domain"]
        return 200, {
            "result": {
                "client_id": install["client_id"],
                "scope": "imbot,im",
                "install": {
                    "installed": install.get("installed", True),
                    "version": 1,
                    "status": "L",
                    "scope": "imbot,im",
                    "domain": domain,
                    "uri": f"https://{domain}",
                    "client_endpoint": install.get("client_endpoint") or f"https://{domain}/rest/",
                    "member_id": install["member_id"],
                    "member_type": "PORTAL",
                },
                "user_id": install.get("user_id", 1),
            },
            "time": {"start": time.time(), "finish": time.time(), "duration": 0.0},
        }
