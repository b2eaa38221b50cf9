"""The Django admin of imbot_app: what the bot heard and said, why a handler failed, replay.

One module per part, each registering its ModelAdmins on import:

* :mod:`.portals`: portals and their tokens (only ever a masked hint);
* :mod:`.bots`: bots with their commands;
* :mod:`.chats`: chats with their transcript, and the people in them;
* :mod:`.messages`: messages and command invocations;
* :mod:`.events`: the event browser, handler runs and the Replay action and button;
* :mod:`.fetch`: fetch-mode bots' polling state (offset, last poll, lag, last error).

Helpers: :mod:`.masking`, :mod:`.badges`, :mod:`.filters` (list filters that stay cheap on
big tables), :mod:`.sections` (paginated parts of change pages), :mod:`.transcript`,
:mod:`.replaying` and :mod:`.overview` (the chart on the app's index page).
"""

from imbot_app.admin import bots, chats, events, fetch, messages, portals
from imbot_app.admin.masking import mask

__all__ = ["bots", "chats", "events", "fetch", "mask", "messages", "portals"]
