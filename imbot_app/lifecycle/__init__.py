"""Lifecycle: the bots this project declares and their life on each portal (layer 6).

Owns bot and command declarations (``specs``, ``bots``), registration plans and their
application (``plans``, ``registration``) and the built-in install/update/uninstall handlers
(``handlers``).

May import: every room below it (layer 1, ``protocol``, ``outbound``, ``inbound``, ``dispatch``).
"""
