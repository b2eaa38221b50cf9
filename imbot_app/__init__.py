"""imbot_app: Bitrix24 chat bots as ordinary Django.

Add ``"imbot_app"`` to ``INSTALLED_APPS``, include ``imbot_app.urls`` under ``imbot/`` and point
Bitrix24 at ``https://<your host>/imbot/events/``.  Handlers go in an ``imbot_handlers`` module
of any installed app::

    from imbot_app import on_command

    @on_command("echo")
    def echo(command):
        command.answer(command.params)

The package is laid out by stage (``inbound``, ``dispatch``, ``outbound``, ``lifecycle``, ...):
see docs/architecture.md.
"""

from imbot_app.dispatch.routing import (
    on_command,
    on_context,
    on_event,
    on_join,
    on_message,
    on_reaction,
)

__version__ = "0.1.0"

__all__ = ["on_command", "on_context", "on_event", "on_join", "on_message", "on_reaction"]
