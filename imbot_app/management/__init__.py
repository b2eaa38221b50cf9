"""Management: the ``manage.py imbot_*`` commands and what only they use (layer 7).

Owns the commands (``commands/``), running one action over many portals (``portal_runs``),
retention (``retention``: which events ``imbot_prune`` deletes), the progress bar
(``progress``) and time arguments (``timespec``).  May import every room.
"""
