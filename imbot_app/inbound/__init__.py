"""Inbound: from a request's body to a stored event (layer 4).

Owns the body parsers and their limits (``parsers``), authentication and install verification
(``auth``), and the one-transaction store with deduplication (``store``), which calls the
on-commit hook it is *given* and knows nothing of handlers.

May import: layer 1 (``models``, ``conf``, ``errors``, ``events``, ``signals``, ``wire``), the
protocol registry ``imbot_app.protocol`` and ``outbound`` (webhook-mode configuration).
"""
