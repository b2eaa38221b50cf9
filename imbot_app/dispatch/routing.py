"""Routing decorators on top of the signals: on_command, on_message, on_join, on_event,
and for Chatbots 2.0 on_reaction and on_context.

    from imbot_app import on_command, on_message

    @on_command("echo")
    def echo(command):
        command.answer(command.params)

    @on_message(regex=r"^order (?P<number>\\d+)$", chat_type="P", priority=10)
    def order_status(message, number):
        message.reply(f"Order {number} is on its way")
        message.stop()  # the handlers after this one do not run for this message

Each decorator wraps the function in a :class:`Route` and connects that route to the matching
signal as an ordinary receiver, so routes and hand-written ``@receiver`` functions fan out
side by side.  The dispatcher (:mod:`imbot_app.dispatch.runner`) asks each route whether it matches
before running it, so a route that does not match leaves no
:class:`~imbot_app.models.HandlerRun`; it orders all receivers of an event by ``priority``
(higher first, 0 by default, ties in the order they were connected) and stops after a handler
that called ``context.stop()``.

The decorators return the function unchanged, so one function may carry several routes.
Routes live in a :class:`Router`; tests use :meth:`Router.isolated` to start from none and
get the previous ones back afterwards.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from asgiref.sync import async_to_sync
from django.dispatch import Signal

from imbot_app import signals
from imbot_app.dispatch import patterns

__all__ = [
    "Route",
    "Router",
    "handler_path",
    "on_command",
    "on_context",
    "on_event",
    "on_join",
    "on_message",
    "on_reaction",
    "router",
]

Handler = TypeVar("Handler", bound=Callable[..., Any])
Match = tuple[tuple[Any, ...], dict[str, Any]]
Matcher = Callable[[Any], Match | None]

NO_ARGUMENTS: Match = ((), {})


def handler_path(func: Any) -> str:
    """The dotted path a handler is recorded under in HandlerRun: ``module.qualname``."""
    module = getattr(func, "__module__", None) or type(func).__module__
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}"


class Route:
    """A handler connected to one signal, with a filter and a priority.

    A route is itself a signal receiver: sent through Django's plain ``Signal.send`` it runs
    its handler when its filter matches, so it also works outside the dispatcher.
    """

    def __init__(
        self,
        handler: Callable[..., Any],
        signal: Signal,
        keyword: str,
        *,
        priority: int = 0,
        matcher: Matcher | None = None,
        description: str = "",
    ) -> None:
        self.handler = handler
        self.signal = signal
        self.keyword = keyword
        self.priority = priority
        self.matcher = matcher
        self.description = description
        self.path = handler_path(handler)

    def __repr__(self) -> str:
        return f"<Route {self.description or self.keyword} -> {self.path} priority={self.priority}>"

    def match(self, context: Any) -> Match | None:
        """The arguments to call the handler with, or ``None`` when it does not apply."""
        if self.matcher is None:
            return NO_ARGUMENTS
        return self.matcher(context)

    def invoke(self, context: Any, match: Match = NO_ARGUMENTS) -> Any:
        args, kwargs = match
        if inspect.iscoroutinefunction(self.handler):
            return async_to_sync(self.handler)(context, *args, **kwargs)
        return self.handler(context, *args, **kwargs)

    def __call__(self, signal: Signal | None = None, sender: Any = None, **named: Any) -> Any:
        context = named[self.keyword]
        match = self.match(context)
        if match is None:
            return None
        return self.invoke(context, match)


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in values if v and v.strip())


def _chat_types(chat_type: str | Iterable[str] | None) -> frozenset[str] | None:
    if chat_type is None:
        return None
    if isinstance(chat_type, str):
        return frozenset({chat_type.upper()})
    return frozenset(str(t).upper() for t in chat_type)


class Router:
    """The routes registered by the decorators, connected to their signals."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def add(self, route: Route) -> Route:
        route.signal.connect(route, weak=False)
        self._routes.append(route)
        return route

    def remove(self, route: Route) -> None:
        route.signal.disconnect(route)
        self._routes.remove(route)

    def clear(self) -> None:
        """Disconnect every route."""
        for route in list(self._routes):
            self.remove(route)

    @contextmanager
    def isolated(self) -> Iterator[Router]:
        """Run a block with no routes; afterwards drop its routes and restore the earlier ones.

        Tests use it so handlers registered by one test never run in another (and the example
        project's handlers do not run where a test does not want them).
        """
        saved = list(self._routes)
        self.clear()
        try:
            yield self
        finally:
            self.clear()
            for route in saved:
                self.add(route)

    # ---------------------------------------------------------------- decorators

    def on_command(self, *names: str, priority: int = 0) -> Callable[[Handler], Handler]:
        """Run the handler for the commands called ``names`` (without the slash, any case).

        The handler gets a :class:`~imbot_app.dispatch.context.CommandContext`.
        """
        wanted = frozenset(n.strip().lstrip("/").casefold() for n in names if n.strip())
        if not wanted:
            raise ValueError("on_command needs at least one command name")

        def matcher(command: Any) -> Match | None:
            return NO_ARGUMENTS if command.name.casefold() in wanted else None

        what = "command " + ",".join(sorted(wanted))
        route: Callable[[Handler], Handler] = self._route(
            None, signals.command_received, "command", what, priority, matcher
        )
        return route

    @overload
    def on_message(self, regex: Handler) -> Handler: ...

    @overload
    def on_message(
        self,
        regex: str | re.Pattern[str] | None = None,
        *,
        chat_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Callable[[Handler], Handler]: ...

    def on_message(
        self,
        regex: Any = None,
        *,
        chat_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Any:
        """Run the handler for new messages (ONIMBOTMESSAGEADD), optionally filtered.

        ``regex`` is searched in ``message.text``; its named groups are passed as keyword
        arguments, or else its unnamed groups as positional ones.  It is matched with a
        timeout (``IMBOT_REGEX_TIMEOUT``, see :mod:`imbot_app.dispatch.patterns`): a pattern that
        times out on a message is recorded as this handler's failure.  ``chat_type`` is a
        :class:`~imbot_app.models.ChatType` letter or several ("P" private, "C" group ...).
        Messages written by bots never get here.  Usable bare: ``@on_message``.
        """
        if callable(regex) and not isinstance(regex, re.Pattern):
            return self.on_message()(regex)
        pattern = patterns.compile_pattern(regex) if regex is not None else None
        types = _chat_types(chat_type)

        def matcher(message: Any) -> Match | None:
            if types is not None and message.chat_type.upper() not in types:
                return None
            if pattern is None:
                return NO_ARGUMENTS
            found = patterns.search(pattern, message.text)
            if found is None:
                return None
            named = found.groupdict()
            return ((), named) if named else (found.groups(), {})

        what = f"message {pattern.pattern if pattern else '*'}"
        return self._route(None, signals.message_added, "message", what, priority, matcher)

    @overload
    def on_join(self, func: Handler) -> Handler: ...

    @overload
    def on_join(
        self,
        func: None = None,
        *,
        chat_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Callable[[Handler], Handler]: ...

    def on_join(
        self,
        func: Any = None,
        *,
        chat_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Any:
        """Run the handler when the bot joins a chat or a user opens a dialog with it.

        The handler gets a :class:`~imbot_app.dispatch.context.JoinContext`.  Usable bare:
        ``@on_join``.
        """
        types = _chat_types(chat_type)

        def matcher(join: Any) -> Match | None:
            if types is not None and join.chat.type.upper() not in types:
                return None
            return NO_ARGUMENTS

        return self._route(func, signals.bot_joined_chat, "join", "join", priority, matcher)

    def _route(
        self,
        func: Any,
        signal: Signal,
        keyword: str,
        description: str,
        priority: int,
        matcher: Matcher,
    ) -> Any:
        """Bare (``@on_x``) or called (``@on_x(...)``): register ``func`` on ``signal``."""

        def decorate(handler: Handler) -> Handler:
            self.add(
                Route(
                    handler,
                    signal,
                    keyword,
                    priority=priority,
                    matcher=matcher,
                    description=description,
                )
            )
            return handler

        return decorate(func) if func is not None else decorate

    def on_reaction(
        self,
        func: Any = None,
        *,
        reaction: str | Iterable[str] | None = None,
        action: str | None = None,
        chat_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Any:
        """Chatbots 2.0: run the handler when someone sets or removes a reaction on a message.

        The handler gets a :class:`~imbot_app.dispatch.context.ReactionContext`.  ``reaction``
        (``"like"``, or several) and ``action`` (``"add"`` / ``"delete"``) narrow it down.
        Usable bare: ``@on_reaction``.
        """
        codes = (
            None
            if reaction is None
            else frozenset([reaction] if isinstance(reaction, str) else reaction)
        )
        types = _chat_types(chat_type)
        if action not in (None, "add", "delete"):
            raise ValueError("on_reaction's action is 'add' or 'delete'")

        def matcher(context: Any) -> Match | None:
            if codes is not None and context.reaction not in codes:
                return None
            if action is not None and context.action != action:
                return None
            if types is not None and context.chat.type.upper() not in types:
                return None
            return NO_ARGUMENTS

        what = "reaction" + (" " + ",".join(sorted(codes)) if codes else "")
        return self._route(func, signals.reaction_changed, "reaction", what, priority, matcher)

    def on_context(
        self,
        func: Any = None,
        *,
        entity_type: str | Iterable[str] | None = None,
        priority: int = 0,
    ) -> Any:
        """Chatbots 2.0: run the handler when a user opens the bot from a ``BOT_CONTEXT`` link.

        The handler gets a :class:`~imbot_app.dispatch.context.ContextGetContext`;
        ``entity_type`` (``"task"`` ...) narrows it to links of that kind.  Usable bare.
        """
        kinds = (
            None
            if entity_type is None
            else frozenset(
                [entity_type] if isinstance(entity_type, str) else [str(e) for e in entity_type]
            )
        )

        def matcher(context: Any) -> Match | None:
            if kinds is not None and context.entity_type not in kinds:
                return None
            return NO_ARGUMENTS

        return self._route(func, signals.context_requested, "context", "context", priority, matcher)

    def on_event(self, *names: str, priority: int = 0) -> Callable[[Handler], Handler]:
        """Run the handler for events with these Bitrix24 names (any type, known or not).

        ``@on_event("ONAPPINSTALL")`` gets an :class:`~imbot_app.dispatch.context.AppContext`; an
        event
        imbot_app has no class for gets a :class:`~imbot_app.dispatch.context.GenericContext`.
        """
        wanted = _names(names)
        if not wanted:
            raise ValueError("on_event needs at least one event name")

        def matcher(event: Any) -> Match | None:
            return NO_ARGUMENTS if event.event_name.upper() in wanted else None

        what = "event " + ",".join(sorted(wanted))
        route: Callable[[Handler], Handler] = self._route(
            None, signals.event_received, signals.EVENT_KEYWORD, what, priority, matcher
        )
        return route


#: The router the package-level decorators register with.
router = Router()

on_command = router.on_command
on_message = router.on_message
on_join = router.on_join
on_event = router.on_event
on_reaction = router.on_reaction
on_context = router.on_context
