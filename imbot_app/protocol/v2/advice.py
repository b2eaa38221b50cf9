"""What Chatbots 2.0 error codes mean, in words a person can act on.

``BitrixError.error`` is Bitrix24's stable code; :func:`explain` turns it (and the description
Bitrix24 gave) into the message registration and the admin show.
"""

from __future__ import annotations

from imbot_app.protocol.v2.methods import MAX_BOT_TOKEN

__all__ = ["ERROR_ADVICE", "explain"]

#: What a v2 ``error`` code means and what to do about it.
ERROR_ADVICE: dict[str, str] = {
    "BOT_CODE_ALREADY_TAKEN": "another owner (an application, or another botToken) already "
    "registered a bot with this code on the portal; pick another code, or register with the "
    "botToken that owns it",
    "BOT_CODE_REQUIRED": "Bot.register needs fields.code",
    "BOT_PROPERTIES_REQUIRED": "Bot.register needs fields.properties with a name",
    "BOT_INVALID_TYPE": "the bot type must be bot, supervisor, personal or openline",
    "BOT_INVALID_EVENT_MODE": "eventMode must be fetch or webhook",
    "BOT_WEBHOOK_URL_REQUIRED": "a webhook-mode bot needs fields.webhookUrl",
    "BOT_INVALID_CALLBACK": "Bitrix24 refused the webhookUrl (it must be a public http(s) URL)",
    "BOT_LIMIT_EXCEEDED": "the application already has the most bots Bitrix24 allows (100)",
    "BOT_TOKEN_INVALID_LENGTH": f"a botToken is at most {MAX_BOT_TOKEN} characters",
    "BOT_TOKEN_NOT_SPECIFIED": "an inbound-webhook portal must send the bot's botToken",
    "BOT_TOKEN_ROTATION_FAILED": "Bitrix24 could not rotate the botToken; the old one still works",
    "BOT_OWNERSHIP_ERROR": "the bot belongs to another application or botToken (a rotated "
    "token loses access at once)",
    "BOT_ID_REQUIRED": "the call did not name a botId",
    "BOT_NOT_FOUND": "Bitrix24 no longer knows this bot (unregistered, or the app was "
    "reinstalled); register it again",
    "BOT_REGISTER_FAILED": "Bitrix24 could not register the bot; try again later",
    "BOT_UNREGISTER_FAILED": "Bitrix24 could not unregister the bot; try again later",
    "COMMAND_REQUIRED": "Command.register needs fields.command",
    "COMMAND_NAME_INVALID": "a command is Latin letters, digits and '_', without the slash",
    "COMMAND_NAME_EMPTY": "the command name is empty",
    "COMMAND_TITLE_REQUIRED": "a visible command needs a title",
    "COMMAND_NOT_FOUND": "Bitrix24 no longer knows this command; register it again",
    "COMMAND_ALREADY_EXISTS": "the bot already has a command with this name",
    "COMMAND_ANSWER_FAILED": "Bitrix24 could not post the command's answer",
    "ACCESS_DENIED": "the bot may not do this here (not a member, or not its own message)",
    "EMPTY_MESSAGE": "a message needs a text or an attachment",
    "SENDING_FAILED": "Bitrix24 could not send the message",
    "REACTION_ALREADY_SET": "the bot already set this reaction",
    "REACTION_NOT_FOUND": "the bot has not set this reaction",
    "QUERY_LIMIT_EXCEEDED": "Bitrix24's request budget (2 per second per application, bursts "
    "of 50) is spent; back off and retry",
    "OPERATION_TIME_LIMIT": "Bitrix24 spent its time budget on this method; back off and retry",
    "USER_NOT_SUBSCRIBED": "withUserEvents needs im.v2.Event.subscribe for the token's user",
    "SCOPE_ERROR": "the application lacks the imbot (or im) scope",
    "AUTH_ERROR": "Bitrix24 refused the credentials",
}


def explain(error: str, description: str = "") -> str:
    """A sentence a person can act on for a v2 ``error`` code (and Bitrix24's description)."""
    advice = ERROR_ADVICE.get(error)
    said = f" (Bitrix24: {description})" if description else ""
    if advice is None:
        return f"{error}{said}"
    return f"{error}: {advice}{said}"
