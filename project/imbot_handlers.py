"""The example bot: ``/echo`` answers with its params; ``/help`` and a plain private message
get help.

imbot_app imports this module at start-up because ``project`` is an installed app and the
module is called ``imbot_handlers``.  The replies go to Bitrix24 as the bot
(``IMBOT_SENDER=imbot_app.outbound.calls.PendingSender`` only logs them) and are stored as the
chat's outgoing messages.
"""

from __future__ import annotations

from imbot_app import on_command, on_join, on_message
from imbot_app.dispatch.context import CommandContext, JoinContext, MessageContext
from imbot_app.models import ChatType

HELP_TEXT = (
    "Hi! I am the echo bot. Commands:\n"
    "/echo <text> - I repeat <text>\n"
    "/help - this text\n"
    "Write to me here any time to see this again."
)


@on_command("echo")
def echo(command: CommandContext) -> None:
    """``/echo test`` answers ``test`` (the reference page's own example)."""
    command.answer(command.params or "You sent /echo without text.")


@on_command("help")
def help_command(command: CommandContext) -> None:
    """``/help`` answers with the help text (the bot and both commands are declared in
    ``IMBOT_BOTS``, project/settings.py)."""
    command.answer(HELP_TEXT)


@on_message(regex=r"^(?!/)", chat_type=ChatType.PRIVATE, priority=-10)
def private_help(message: MessageContext) -> None:
    """Any plain (not slash-command) message in a private chat gets the help text.

    Priority -10: handlers of your own with the default priority run first and may
    ``message.stop()`` this one.
    """
    message.reply(HELP_TEXT)


@on_join
def welcome(joined: JoinContext) -> None:
    """Say hello when someone opens a dialog with the bot or adds it to a chat."""
    joined.reply("Hello! Type /echo <text> and I will repeat it.")
