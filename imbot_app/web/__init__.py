"""Web: the HTTP entry points that wire the rooms together (layer 7).

Owns the event endpoint (``views``: it hands ``dispatch``'s on-commit hook to
``inbound.store``) and the install page (``install``).  May import every room.
"""
