"""Every ``IMBOT_*`` setting, with its default, read in one place.

Values are looked up on each access so that ``override_settings`` in tests and settings changed
at run time are honoured; the lookup is a dict read and costs nothing on the hot path.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Check an ONAPPINSTALL's access token with app.info before trusting a new portal.
    "IMBOT_VERIFY_INSTALL": True,
    # OAuth servers an install may name as auth[server_endpoint]; anything else is refused.
    "IMBOT_OAUTH_SERVERS": [
        "https://oauth.bitrix.info/rest/",
        "https://oauth.bitrix24.tech/rest/",
    ],
    # Hosts a portal's REST endpoint (client_endpoint) may be on besides the portal's own
    # domain over https, any scheme: only for tests and local fakes, e.g. ["127.0.0.1"].
    "IMBOT_ENDPOINT_HOSTS": [],
    # Your Bitrix24 application's client id (from the developer console); an install is
    # verified only when app.info says its token belongs to this application.
    "IMBOT_CLIENT_ID": "",
    # The application's client secret, sent only to an IMBOT_OAUTH_SERVERS server when a
    # token set is refreshed.
    "IMBOT_CLIENT_SECRET": "",
    # REST calls per second per portal, the drain rate of the client's copy of Bitrix24's
    # leaky bucket (a Portal's own rate_limit wins; Enterprise portals allow 5).
    "IMBOT_RATE_LIMIT": 2.0,
    # Burst per portal, the bucket's size (a Portal's own rate_burst wins; Enterprise: 250);
    # the client keeps one slot of headroom.
    "IMBOT_RATE_BURST": 50,
    # Cache alias holding the buckets; every process must share it (Redis) for the limit to
    # hold across processes.
    "IMBOT_RATE_LIMIT_CACHE": "default",
    # Retries of a call refused with QUERY_LIMIT_EXCEEDED or HTTP 429.
    "IMBOT_REST_MAX_RETRIES": 5,
    # Seconds of the first backoff before such a retry; it doubles, with jitter, up to 30 s.
    "IMBOT_REST_BACKOFF": 0.5,
    # Webhook mode: the inbound webhook URL (https://PORTAL/rest/USER_ID/CODE/) a bot on
    # one portal is registered and called through. A secret: never stored or logged.
    "IMBOT_WEBHOOK_URL": "",
    # Webhook mode: the CLIENT_ID the bot is registered with and Bitrix24 sends back with its
    # events (a secret of at least 32 random characters: imbot_register --generate-client-id).
    "IMBOT_WEBHOOK_CLIENT_ID": "",
    # Bytes an event request body may have; a larger one (declared or read) gets 413.
    "IMBOT_MAX_BODY_BYTES": 1024 * 1024,
    # Form fields (or JSON values, containers included) an event may have; more get 400.
    "IMBOT_MAX_FIELDS": 1000,
    # Bracket (or JSON) nesting an event may have; deeper gets 400.
    "IMBOT_MAX_DEPTH": 16,
    # Extra CSP sources allowed to frame the install page besides Bitrix24's cloud zones and
    # the verified portal domain, e.g. ["https://crm.example.com"] for on-premise portals.
    "IMBOT_FRAME_ANCESTORS": [],
    # Seconds one @on_message(regex=...) search may take on one message (None: no limit);
    # patterns meet text anyone can send, and a timeout fails that handler's run.
    "IMBOT_REGEX_TIMEOUT": 0.1,
    # Characters of a message's text a handler pattern is searched in.
    "IMBOT_REGEX_MAX_TEXT": 100_000,
    # Characters of a message's text the admin renders (BB codes and all); the rest is cut
    # with "… (truncated)" so that one huge message cannot stall a chat page.
    "IMBOT_ADMIN_TEXT_LIMIT": 20_000,
    # Seconds to wait for Bitrix24's servers (REST calls, token refreshes, install checks).
    "IMBOT_HTTP_TIMEOUT": 10.0,
    # META key holding the client address when behind a proxy, e.g. "HTTP_X_FORWARDED_FOR".
    "IMBOT_CLIENT_IP_HEADER": None,
    # How handlers run once an event is stored: "inline" (in the web process, after the
    # commit: the webhook answers only when they are done), "worker" (``manage.py
    # imbot_worker`` takes stored events from the Event table; the webhook only stores) or
    # "celery" (one task per event, carrying only its id).
    "IMBOT_DISPATCH": "inline",
    # Dotted module paths imported at start-up besides every app's ``imbot_handlers``.
    "IMBOT_HANDLER_MODULES": [],
    # Seconds a process may hold an event's claim without touching it (renewed before each
    # handler).  A worker that dies mid-handler blocks its event for at most this long, so
    # keep it above your slowest handler.
    "IMBOT_DISPATCH_LEASE": 600,
    # The Celery queue events are sent to; None is Celery's default queue.
    "IMBOT_CELERY_QUEUE": None,
    # Celery mode: events still "received" (and unclaimed) this many seconds after they
    # arrived are sent to Celery again by the sweep (imbot_worker, or the beat task
    # imbot_app.requeue_stranded), so events stored while the broker was down are not lost.
    "IMBOT_REQUEUE_AFTER": 60,
    # imbot_worker: events claimed per fetch (one SELECT ... FOR UPDATE SKIP LOCKED).
    "IMBOT_WORKER_BATCH": 100,
    # imbot_worker: seconds between polls when no notification wakes it (PostgreSQL
    # LISTEN/NOTIFY wakes it at once; SQLite always polls).
    "IMBOT_WORKER_POLL": 1.0,
    # imbot_worker: the PostgreSQL LISTEN/NOTIFY channel new events are announced on.
    "IMBOT_WORKER_CHANNEL": "imbot_events",
    # What context reply helpers hand their Bitrix24 calls to: a dotted path or an object
    # with ``send(call)``.  RestSender calls Bitrix24; PendingSender only logs (dry runs).
    "IMBOT_SENDER": "imbot_app.outbound.sender.RestSender",
    # The bots this app registers on every portal, with their commands: dicts (or
    # imbot_app.lifecycle.specs.BotSpec objects); see imbot_app.lifecycle.bots.  Code may add more
    # with declare().
    "IMBOT_BOTS": [],
    # The public HTTPS address of this site's root, e.g. "https://bot.example.com": Bitrix24
    # sends the bots' events to it + the events path (reverse("imbot_app:events")).
    "IMBOT_PUBLIC_URL": "",
    # Register the declared bots when a portal installs the app (ONAPPINSTALL or the install
    # page) and sync them again on ONAPPUPDATE; off: run manage.py imbot_register yourself.
    "IMBOT_REGISTER_ON_INSTALL": True,
    # Application events bound (event.bind) to the events URL when bots are registered:
    # UI apps get their application token only through a bound ONAPPINSTALL, and updates and
    # uninstalls are only reported to apps that bound them.
    "IMBOT_BIND_EVENTS": ["ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"],
    # Keys that seal access and refresh tokens at rest and key the application tokens'
    # digests (imbot_app.sealing): a list of strings of 32+ random characters, newest first.
    # None: derived from SECRET_KEY (a system check warns).  To rotate, put a new key first,
    # run manage.py imbot_rotate_keys, and drop the old key once it reports nothing left.
    "IMBOT_ENCRYPTION_KEYS": None,
    # ONAPPUNINSTALL with CLEAN=1 ("delete the application's data") deletes the portal's
    # messages, command invocations and chat users and scrubs its events' data.
    "IMBOT_HONOR_CLEAN": True,
    # Chatbots 2.0 fetch mode (imbot.v2.Event.get): seconds between polls of an empty
    # queue (Bitrix24 recommends 5-30).
    "IMBOT_FETCH_IDLE_INTERVAL": 10.0,
    # Fetch mode: seconds between calls while Bitrix24 says hasMore (at least 2).
    "IMBOT_FETCH_BUSY_INTERVAL": 2.0,
    # Fetch mode: events asked for per Event.get call (1-1000).
    "IMBOT_FETCH_LIMIT": 1000,
    # Fetch mode: seconds one poller holds a bot's lease, so two pollers never fetch the
    # same bot's queue.
    "IMBOT_FETCH_LEASE": 120,
    # Fetch mode: seconds of the first backoff after a failed call; it doubles, with jitter.
    "IMBOT_FETCH_BACKOFF": 2.0,
    # Fetch mode: the longest backoff, in seconds.
    "IMBOT_FETCH_MAX_BACKOFF": 300.0,
}


class ImbotSettings:
    """Attribute access to the ``IMBOT_*`` settings: ``imbot_settings.VERIFY_INSTALL``."""

    def __getattr__(self, name: str) -> Any:
        key = f"IMBOT_{name}"
        if key not in DEFAULTS:
            raise AttributeError(f"unknown imbot_app setting {key}")
        return getattr(django_settings, key, DEFAULTS[key])


imbot_settings = ImbotSettings()
