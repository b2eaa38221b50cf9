"""An install before ``IMBOT_PUBLIC_URL`` is set: a state to show, not a failure to trace.

Trying a bot locally (``make run`` and a curl install, or ``imbot_simulate``) usually happens
before the site has a public address, so the declared bots cannot be registered yet: Bitrix24
would have nowhere to send their events.  That used to fail the install event with a 25-line
traceback and put a red failure on the admin's first screen.  Now the portal records
"waiting for IMBOT_PUBLIC_URL" (shown as such in the admin), one warning line is logged, and
the install event is processed; ``manage.py imbot_register`` registers the bots once the
setting is there.
"""

from __future__ import annotations

import logging

from imbot_app.conf import imbot_settings
from imbot_app.lifecycle.bots import declared_bots, needs_public_url, public_url_problem
from imbot_app.lifecycle.specs import DeclarationError
from imbot_app.models import Portal

logger = logging.getLogger("imbot_app.registration")

WAITING = "waiting for IMBOT_PUBLIC_URL"


def wait_for_public_url(portal: Portal) -> bool:
    """True (and the waiting state recorded on ``portal``) if IMBOT_PUBLIC_URL is unusable
    and a declared bot needs it (fetch-mode Chatbots 2.0 bots do not)."""
    problem = public_url_problem(imbot_settings.PUBLIC_URL)
    if problem is None:
        return False
    try:
        if not needs_public_url(declared_bots()):
            return False
    except DeclarationError:
        pass  # registration reports it; waiting is what the missing URL alone would mean
    message = f"{WAITING}: {problem}. Set it, then run `manage.py imbot_register`."
    Portal.objects.filter(pk=portal.pk).update(registration_error=message)
    portal.registration_error = message
    logger.warning("portal %s: bots not registered yet, %s", portal, problem)
    return True


def is_waiting(portal: Portal) -> bool:
    """Whether the portal's last registration stopped for want of IMBOT_PUBLIC_URL."""
    return portal.registration_error.startswith(WAITING)
