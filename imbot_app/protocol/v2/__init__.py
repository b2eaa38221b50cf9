"""Bitrix24 Chatbots 2.0 (``imbot.v2.*`` methods, ``ONIMBOTV2*`` events).

- :mod:`.events` — a webhook body or an ``Event.get`` item -> typed event (``parse_event``,
  ``fetch_payload``, ``dedup_key``); :mod:`.objects` holds the field-level validation.
- :mod:`.methods` — typed reply or registration -> ``imbot.v2`` method and params; v2 error
  codes -> messages a person can act on.
- :mod:`.fetch` — the fetch-mode poller core: lease, ``Event.get``, store, then offset.

Nothing here imports a worker loop, the endpoint or the dispatcher: they call in.
"""
