"""Outbound: from a handler's reply to Bitrix24 (layer 3).

Owns the REST client (``rest``: token refresh, retries, batch), the per-portal rate limit
(``ratelimit``), outgoing calls and the senders that deliver and store them (``calls``,
``sender``), the KEYBOARD/ATTACH builders (``blocks``) and webhook-mode configuration
(``webhook``).

May import: layer 1 and ``imbot_app.protocol``; nothing above.
"""
