"""The install page, ``/imbot/install/``: how an application with a user interface installs.

Bitrix24 opens an application's "initial installation path" in an iframe, POSTing
``AUTH_ID`` (an access token), ``AUTH_EXPIRES``, ``REFRESH_ID``, ``member_id``, ``LANG`` ...
(``DOMAIN``, ``PROTOCOL``, ``APP_SID`` in the query string), and considers the application
installed, and sends it events, only once the page calls ``BX24.installFinish()``.

Nothing in that request is signed, and unlike ONAPPINSTALL it carries no application token.
What can be trusted is the OAuth server's word: ``AUTH_ID`` is checked with ``app.info`` at
the allow-listed OAuth servers (``IMBOT_OAUTH_SERVERS``, tried in turn; the request does not
say which one is the portal's), exactly as an ONAPPINSTALL is verified, and the portal is
stored from that answer (member_id, domain, REST endpoint), never from the request's
``DOMAIN``.  This verification always happens, whatever ``IMBOT_VERIFY_INSTALL`` says.

The page then stores the user's tokens (as the installer's when this is the installation),
registers the declared bots (:func:`imbot_app.lifecycle.registration.sync_portal`, which also binds
ONAPPINSTALL: its delivery after installFinish brings the application token every later event
is checked against) and renders ``imbot_app/install.html``, which calls installFinish only
if all of that worked and shows what failed otherwise.  It is CSRF-exempt (Bitrix24 posts it
cross-site) and may be framed (X-Frame-Options exempt), this view only, and only by Bitrix24 and
the portal (``Content-Security-Policy: frame-ancestors``, :mod:`imbot_app.web.framing`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from imbot_app import events as ev
from imbot_app.conf import imbot_settings
from imbot_app.inbound.auth import AuthenticationFailed, InstallInfo, verify_install
from imbot_app.lifecycle.bots import declared_bots
from imbot_app.lifecycle.plans import Plan
from imbot_app.lifecycle.registration import sync_portal
from imbot_app.lifecycle.registration_wait import wait_for_public_url
from imbot_app.logsafe import safe, safe_text
from imbot_app.models import Credential, Portal
from imbot_app.web.form_posts import small_bodies_only
from imbot_app.web.framing import allow_bitrix24_framing, framed_by_bitrix24

logger = logging.getLogger("imbot_app.install")

TEMPLATE = "imbot_app/install.html"
# Longest values stored from the request (Bitrix24's are far shorter).
MAX_TOKEN = 255
MAX_EXPIRES_DIGITS = 9


def page_params(request: HttpRequest) -> dict[str, str]:
    """The query string and the form, the form winning: Bitrix24 splits them between both."""
    params = {key: request.GET.get(key, "") for key in request.GET}
    params.update({key: request.POST.get(key, "") for key in request.POST})
    return {key: str(value).strip() for key, value in params.items()}


def verify_page(access_token: str, member_id: str) -> tuple[InstallInfo, str]:
    """Ask the allow-listed OAuth servers whose ``access_token`` this is.

    Returns app.info's answer and the server that gave it; raises
    :class:`~imbot_app.inbound.auth.AuthenticationFailed` if none vouches for it.
    """
    reasons = []
    for server in imbot_settings.OAUTH_SERVERS:
        block = ev.AuthBlock(member_id=member_id, access_token=access_token, server_endpoint=server)
        try:
            return verify_install(block), server
        except AuthenticationFailed as failure:
            reasons.append(failure.reason)
    raise AuthenticationFailed("; ".join(reasons) or "IMBOT_OAUTH_SERVERS is empty")


def store_install(info: InstallInfo, server: str, params: dict[str, str]) -> Portal:
    """Store the portal from app.info's answer and the visiting user's tokens.

    The user becomes the installer (whose tokens registration uses) when this is the
    installation: a new or uninstalled portal, one needing re-authorisation or without an
    installer, or app.info saying the installation is not finished.  Any other visitor's
    tokens are stored for them alone.
    """
    assert info.user_id is not None
    now = timezone.now()
    with transaction.atomic():
        portal = Portal.objects.select_for_update().filter(member_id=info.member_id).first()
        if portal is None:
            portal = Portal(member_id=info.member_id)
        installing = (
            portal.pk is None
            or portal.status != Portal.Status.INSTALLED
            or portal.installer_user_id is None
            or info.installed is False
        )
        if info.domain:
            portal.domain = info.domain[:255]
        if info.client_endpoint:
            portal.client_endpoint = info.client_endpoint[:255]
        portal.server_endpoint = server[:255]
        if params.get("LANG"):
            portal.language = params["LANG"][:10]
        if installing:
            portal.status = Portal.Status.INSTALLED
            portal.installer_user_id = info.user_id
            portal.installed_at = now
            portal.uninstalled_at = None
        portal.save()
        defaults: dict[str, Any] = {
            "access_token": params["AUTH_ID"][:MAX_TOKEN],
            "expires_at": expires_at(now, params.get("AUTH_EXPIRES", "")),
        }
        if params.get("REFRESH_ID"):
            defaults["refresh_token"] = params["REFRESH_ID"][:MAX_TOKEN]
        Credential.objects.update_or_create(portal=portal, user_id=info.user_id, defaults=defaults)
    return portal


def expires_at(now: datetime, seconds: str) -> datetime | None:
    """``now + AUTH_EXPIRES`` seconds, or ``None`` for anything but a plausible count.

    ``str.isdigit`` accepts "²" and a count of any length, which ``int`` or ``timedelta``
    then refuse: only up to nine ASCII digits (about 31 years) are taken.
    """
    if not (seconds.isascii() and seconds.isdigit()) or len(seconds) > MAX_EXPIRES_DIGITS:
        return None
    return now + timedelta(seconds=int(seconds))


def _page(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    context.setdefault("ok", False)
    context.setdefault("install_finish", False)
    context.setdefault("language", "en")
    response = render(request, TEMPLATE, context, status=status)
    # Framed by Bitrix24 and, once app.info confirmed it, the portal's own domain.
    portal = context.get("portal")
    allow_bitrix24_framing(response, portal.domain if portal is not None else "")
    return response


@method_decorator(
    [
        csrf_exempt,
        xframe_options_exempt,
        framed_by_bitrix24,
        small_bodies_only,
        transaction.non_atomic_requests,
    ],
    name="dispatch",
)
class InstallView(View):
    """``GET`` / ``POST /imbot/install/``: verify, store, register, then installFinish."""

    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.install(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        return self.install(request)

    def install(self, request: HttpRequest) -> HttpResponse:
        params = page_params(request)
        language = params.get("LANG", "")[:10] or "en"
        if not params.get("AUTH_ID") or not params.get("member_id"):
            return _page(
                request,
                400,
                language=language,
                error="This page is opened by Bitrix24 while it installs the application; "
                "it was opened without Bitrix24's AUTH_ID and member_id.",
            )
        try:
            info, server = verify_page(params["AUTH_ID"], params["member_id"])
            if info.user_id is None:
                raise AuthenticationFailed("app.info did not say whose token it is (user_id)")
        except AuthenticationFailed as failure:
            logger.warning(
                "install page refused (member_id %s): %s",
                safe(params["member_id"]),
                safe_text(failure),
            )
            return _page(
                request,
                403,
                language=language,
                error="Bitrix24 did not confirm this installation, so nothing was stored.",
            )
        try:
            portal = store_install(info, server, params)
        except IntegrityError:
            # An ONAPPINSTALL (or another visit) created the portal meanwhile: now it exists.
            portal = store_install(info, server, params)
        plan, error = self.register(portal)
        return _page(
            request,
            language=language,
            ok=not error,
            install_finish=not error,
            portal=portal,
            plan=plan,
            rows=plan.rows() if plan is not None else [],
            error=error,
        )

    @staticmethod
    def register(portal: Portal) -> tuple[Plan | None, str]:
        """Register the declared bots now, if this app registers on install; (plan, error)."""
        if not imbot_settings.REGISTER_ON_INSTALL:
            return None, ""
        try:
            if not declared_bots():
                return None, ""
            if wait_for_public_url(portal):
                return None, portal.registration_error
            plan = sync_portal(portal)
        except Exception as exc:
            logger.exception("install page: registering the bots on %s failed", safe(str(portal)))
            message = f"cannot register the declared bots: {exc}"
            Portal.objects.filter(pk=portal.pk).update(registration_error=message)
            return None, message
        return plan, plan.error
