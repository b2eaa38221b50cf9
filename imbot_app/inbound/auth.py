"""Is this event really from Bitrix24, for a portal that installed us?

Bitrix24 signs nothing.  What it does is send ``auth[application_token]``, a secret per portal
and application, with every event; the first time with ONAPPINSTALL, together with an access
token.  So: a new portal's install is checked by asking the OAuth server (``app.info``) whom
the install's access token belongs to; every later event must carry the stored application
token, compared in constant time.  A *change* of a known portal's application token (install or
update) must also come with an administrator's token (``user.admin``): see
:mod:`imbot_app.outbound.authority` for why, and for where the app may send tokens at all.

:func:`authenticate` returns what the store needs to know; it writes nothing but, in webhook
mode (:mod:`imbot_app.outbound.webhook`), the record of the webhook's portal on its first event.
Failures raise :class:`AuthenticationFailed` whose ``reason`` is logged (never the tokens)
while the client gets a generic 403.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

import requests

from imbot_app import events as ev
from imbot_app.conf import imbot_settings
from imbot_app.events import Envelope
from imbot_app.models import Portal
from imbot_app.outbound import authority, webhook
from imbot_app.protocol import api_of_event
from imbot_app.sealing import token_matches

logger = logging.getLogger("imbot_app.auth")


class AuthenticationFailed(Exception):
    """The event cannot be trusted; ``reason`` says why, for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InstallInfo:
    """What ``app.info`` confirmed about an installation."""

    member_id: str
    client_id: str
    domain: str
    client_endpoint: str
    # Whose token it is, and whether the installation is finished (False while a UI app's
    # install page has not called installFinish yet); None when app.info did not say.
    user_id: int | None = None
    installed: bool | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The outcome of a successful check.

    ``portal`` is ``None`` for the first install of a new portal; ``verified`` is set when
    ``app.info`` vouched for the event's tokens (install, or an update with a new token).
    """

    portal: Portal | None
    verified: InstallInfo | None = None
    # Webhook mode: the event told the member_id of the webhook's portal, recorded without one.
    bind_member_id: str | None = None
    # The portal is uninstalled and this is its ONAPPUNINSTALL again: only a duplicate of the
    # stored one is answered (200 duplicate); anything else is refused by the store.
    replay_only: bool = False


def tokens_match(stored: str, given: str) -> bool:
    """Compare two plain values (member_id, client_id) in constant time; empty never matches.

    A stored application token is a digest: compare it with ``sealing.token_matches``.
    """
    if not stored or not given:
        return False
    return hmac.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))


def _session() -> requests.Session:
    # One session per process: connection reuse to the OAuth server.
    global _SESSION
    if _SESSION is None:
        _SESSION = requests.Session()
    return _SESSION


_SESSION: requests.Session | None = None


def verify_install(auth: ev.AuthBlock) -> InstallInfo:
    """Ask the OAuth server whom ``auth.access_token`` belongs to, and check it is us.

    The server must be one of ``IMBOT_OAUTH_SERVERS``: the payload names it, so an attacker
    would otherwise pick a server that vouches for anything.
    """
    server = authority.allowed_oauth_server(auth.server_endpoint)
    if server is None:
        raise AuthenticationFailed(
            f"install names server_endpoint {auth.server_endpoint!r}, "
            "which is not in IMBOT_OAUTH_SERVERS"
        )
    if not auth.access_token:
        raise AuthenticationFailed("install carries no access_token to verify")
    client_id = imbot_settings.CLIENT_ID
    if not client_id:
        raise AuthenticationFailed(
            "IMBOT_CLIENT_ID is not set, so the install cannot be verified "
            "(set it, or set IMBOT_VERIFY_INSTALL=False)"
        )
    try:
        response = _session().post(
            authority.normalise_server(server) + "app.info",
            data={"auth": auth.access_token},
            timeout=imbot_settings.HTTP_TIMEOUT,
        )
        body: Any = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise AuthenticationFailed(
            f"could not verify the install with {server}: {type(exc).__name__}"
        ) from None
    if not isinstance(body, dict) or "result" not in body:
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise AuthenticationFailed(
            f"app.info refused the install's access token "
            f"(HTTP {response.status_code} {error})".strip()
        )
    result = body["result"] if isinstance(body["result"], dict) else {}
    install_raw = result.get("install")
    install: dict[str, Any] = install_raw if isinstance(install_raw, dict) else {}
    domain = str(install.get("domain", ""))
    endpoint = str(install.get("client_endpoint", "")) or authority.portal_endpoint(domain)
    info = InstallInfo(
        member_id=str(install.get("member_id", "")),
        client_id=str(result.get("client_id", "")),
        domain=domain,
        client_endpoint=endpoint,
        user_id=_int_or_none(result.get("user_id")),
        installed=install["installed"] if isinstance(install.get("installed"), bool) else None,
    )
    if not tokens_match(info.member_id, auth.member_id):
        raise AuthenticationFailed(
            f"app.info says the token belongs to member_id {info.member_id!r}, "
            f"not {auth.member_id!r}"
        )
    if not tokens_match(info.client_id, client_id):
        raise AuthenticationFailed(
            f"app.info says the token belongs to client_id {info.client_id!r}, not IMBOT_CLIENT_ID"
        )
    if not authority.endpoint_allowed(info.client_endpoint, info.domain):
        raise AuthenticationFailed(
            f"app.info names REST endpoint {info.client_endpoint[:200]!r}, which is not https "
            f"on the portal's domain {info.domain[:200]!r} nor on IMBOT_ENDPOINT_HOSTS"
        )
    return info


def verify_admin(auth: ev.AuthBlock) -> InstallInfo:
    """:func:`verify_install`, and the token's user must be an administrator of the portal.

    What a change of a known portal's application token needs: see
    :mod:`imbot_app.outbound.authority`.
    """
    info = verify_install(auth)
    refusal = authority.admin_refusal(info.client_endpoint, auth.access_token, _session())
    if refusal is not None:
        raise AuthenticationFailed(f"token change for portal {auth.member_id}: {refusal}")
    return info


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def authenticate(envelope: Envelope) -> Authenticated:
    """Decide whether to trust the event; raises :class:`AuthenticationFailed` if not."""
    auth = envelope.auth
    if not auth.member_id and _v2_by_domain(envelope):
        return _authenticate_v2_by_domain(envelope)
    if not auth.member_id:
        raise AuthenticationFailed("no auth[member_id]")
    if not auth.application_token:
        raise AuthenticationFailed("no auth[application_token]")
    portal = Portal.objects.filter(member_id=auth.member_id).first()
    name = envelope.name
    config = webhook.webhook_config()
    if config is not None and (portal is None or portal.webhook):
        return _authenticate_webhook(envelope, portal, config)

    if name == ev.APP_INSTALL:
        return _authenticate_install(portal, auth)
    if portal is None:
        raise AuthenticationFailed(f"unknown portal member_id={auth.member_id}")
    if token_matches(portal.application_token, auth.application_token):
        if portal.status == Portal.Status.UNINSTALLED:
            if name == ev.APP_UNINSTALL:
                return Authenticated(portal=portal, replay_only=True)
            raise AuthenticationFailed(f"portal {auth.member_id} is uninstalled")
        return Authenticated(portal=portal)
    if name == ev.APP_UPDATE and imbot_settings.VERIFY_INSTALL:
        # An update may bring a new application token; only an administrator's token that
        # app.info vouches for can prove it.
        return Authenticated(portal=portal, verified=verify_admin(auth))
    raise AuthenticationFailed(
        f"wrong application_token for portal {auth.member_id} ({name})"
        if portal.application_token
        else f"portal {auth.member_id} has no application_token stored ({name})"
    )


def _v2_by_domain(envelope: Envelope) -> bool:
    """A Chatbots 2.0 delivery whose top-level ``auth`` names the portal by domain only.

    The v2 docs' webhook envelope carries ``auth{domain, application_token}`` and no
    ``member_id`` (corpus 074, 075, 077): such an event is checked against the one installed
    portal on that domain instead.  v1 events keep needing ``member_id``.
    """
    return api_of_event(envelope.name) == "v2" and bool(envelope.auth.domain)


def _authenticate_v2_by_domain(envelope: Envelope) -> Authenticated:
    auth = envelope.auth
    if not auth.application_token:
        raise AuthenticationFailed("no auth[application_token]")
    domain = auth.domain.strip().lower()[:255]
    found = list(
        Portal.objects.filter(
            domain__iexact=domain, status=Portal.Status.INSTALLED, webhook=False
        ).exclude(member_id="")[:2]
    )
    if len(found) != 1:
        raise AuthenticationFailed(
            f"no auth[member_id], and {'no' if not found else 'more than one'} "
            f"installed portal on domain {domain!r}"
        )
    portal = found[0]
    if not token_matches(portal.application_token, auth.application_token):
        raise AuthenticationFailed(f"wrong application_token for portal {portal.member_id}")
    return Authenticated(portal=portal)


def _authenticate_webhook(
    envelope: Envelope, portal: Portal | None, config: webhook.WebhookConfig
) -> Authenticated:
    """Webhook mode: the event must carry our CLIENT_ID; the portal is bound on first sight.

    Bitrix24 sends the CLIENT_ID the bot was registered with both as a top-level ``CLIENT_ID``
    and as ``auth[application_token]``; either may be checked, and any other value refused.
    """
    auth = envelope.auth
    given = str(envelope.payload.get("CLIENT_ID") or auth.application_token)
    if not tokens_match(config.client_id, given) or not tokens_match(
        config.client_id, auth.application_token
    ):
        if portal is not None:
            raise AuthenticationFailed(
                f"webhook-mode portal {auth.member_id}: the event's CLIENT_ID is not "
                "IMBOT_WEBHOOK_CLIENT_ID"
            )
        raise AuthenticationFailed(f"unknown portal member_id={auth.member_id}")
    if portal is not None:
        if portal.status == Portal.Status.UNINSTALLED:
            raise AuthenticationFailed(f"portal {auth.member_id} is uninstalled")
        return Authenticated(portal=portal)
    if auth.domain.lower() != config.domain:
        raise AuthenticationFailed(
            f"an event with our CLIENT_ID names domain {auth.domain!r}, not the webhook's"
        )
    pending = Portal.objects.filter(webhook=True, domain=config.domain).first()
    if pending is not None and not webhook.is_pending(pending):
        raise AuthenticationFailed(
            f"the webhook's portal is bound to member_id {pending.member_id}, not {auth.member_id}"
        )
    return Authenticated(
        portal=pending or webhook.ensure_portal(config), bind_member_id=auth.member_id
    )


def _authenticate_install(portal: Portal | None, auth: ev.AuthBlock) -> Authenticated:
    # The install page verified a portal it stored without an application token: its first
    # ONAPPINSTALL is verified too, whatever IMBOT_VERIFY_INSTALL says.
    page_verified = (
        portal is not None
        and not portal.application_token
        and portal.status != Portal.Status.UNINSTALLED
    )
    if imbot_settings.VERIFY_INSTALL or page_verified:
        if portal is not None and not token_matches(
            portal.application_token, auth.application_token
        ):
            return Authenticated(portal=portal, verified=verify_admin(auth))
        return Authenticated(portal=portal, verified=verify_install(auth))
    # Trust on first use, as Bitrix24's own examples do: only for a portal we do not know or
    # one that uninstalled us.  A known portal with a token must present it, or a forged
    # install could take it over.
    if portal is None or portal.status == Portal.Status.UNINSTALLED:
        return Authenticated(portal=portal)
    if token_matches(portal.application_token, auth.application_token):
        return Authenticated(portal=portal)
    raise AuthenticationFailed(
        f"install for already installed portal {auth.member_id} with a different "
        "application_token, and IMBOT_VERIFY_INSTALL is off"
    )
