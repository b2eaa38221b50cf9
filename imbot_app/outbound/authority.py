"""Where tokens may go, and who may change a portal: the rules the wire cannot bend.

An event's ``auth`` block names a domain, a REST endpoint (``client_endpoint``) and an OAuth
server (``server_endpoint``).  None of them is signed, and the app sends secrets to two of them:
every REST call carries an access token to the client endpoint, every refresh carries the
client secret and a refresh token to the OAuth server.  So:

- a refresh goes only to an OAuth server in ``IMBOT_OAUTH_SERVERS``, whatever a row says;
- a client endpoint is accepted only as ``https`` on the portal's own domain, or on a host in
  ``IMBOT_ENDPOINT_HOSTS`` (for tests and local fakes), and only from Bitrix24's word
  (``app.info``); an unverified install gets ``https://<domain>/rest/``;
- an application token of a portal we know changes only when an administrator of that portal
  proves it: Bitrix24 lets only administrators install applications, and any user who opens an
  application gets an access token that ``app.info`` vouches for, so ``app.info`` alone proves
  membership, not authority.  ``user.admin``, asked with the event's own access token at the
  portal's verified REST endpoint, answers whether that token's user is an administrator.

Nothing here writes to the database; :mod:`imbot_app.inbound.auth` and
:mod:`imbot_app.inbound.store` apply it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from imbot_app.conf import imbot_settings


def normalise_server(url: str) -> str:
    return url.strip().rstrip("/").lower() + "/"


def allowed_oauth_server(server_endpoint: str) -> str | None:
    """The configured OAuth server ``server_endpoint`` names, or ``None`` if it is not one."""
    wanted = normalise_server(server_endpoint) if server_endpoint else ""
    for server in imbot_settings.OAUTH_SERVERS:
        if normalise_server(server) == wanted:
            return str(server)
    return None


def default_oauth_server() -> str:
    """Where an unverified install's refreshes go: the first allow-listed OAuth server."""
    servers = list(imbot_settings.OAUTH_SERVERS)
    return str(servers[0]) if servers else ""


def endpoint_allowed(url: str, domain: str) -> bool:
    """Is ``url`` a REST endpoint the app may send a portal's access tokens to?

    ``https`` on the portal's own domain, without credentials in the URL; or any scheme on a
    host listed in ``IMBOT_ENDPOINT_HOSTS``.
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme not in ("https", "http"):
        return False
    if host in {str(h).lower() for h in imbot_settings.ENDPOINT_HOSTS}:
        return True
    domain = domain.strip().lower()
    on_domain = host == domain and port in (None, 443)
    return parts.scheme == "https" and bool(domain) and (on_domain or parts.netloc == domain)


def portal_endpoint(domain: str) -> str:
    """The REST endpoint every Bitrix24 portal has: ``https://<domain>/rest/``."""
    return f"https://{domain.strip().lower()}/rest/" if domain.strip() else ""


def admin_refusal(client_endpoint: str, access_token: str, session: requests.Session) -> str | None:
    """Ask the portal (``user.admin``) whether the token's user is an administrator.

    ``None`` when Bitrix24 answered ``true``; otherwise why not, for the log (no tokens in it).
    ``client_endpoint`` must be Bitrix24's word (app.info's answer), already checked with
    :func:`endpoint_allowed`.
    """
    url = client_endpoint if client_endpoint.endswith("/") else client_endpoint + "/"
    try:
        response = session.post(
            url + "user.admin",
            data={"auth": access_token},
            timeout=imbot_settings.HTTP_TIMEOUT,
        )
        body: Any = response.json()
    except (requests.RequestException, ValueError) as exc:
        return f"could not ask user.admin: {type(exc).__name__}"
    if isinstance(body, dict) and body.get("result") is True:
        return None
    if isinstance(body, dict) and body.get("result") is False:
        return "user.admin says the token's user is not an administrator of the portal"
    error = body.get("error", "") if isinstance(body, dict) else ""
    return f"user.admin refused the token (HTTP {response.status_code} {error})".strip()
