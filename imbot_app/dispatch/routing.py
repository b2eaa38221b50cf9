"""Routing decorators on top of the signals: on_command, on_message, on_join, on_event.

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
    "on_event",
    "on_join",
    "on_message",
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

        def decorate(func: Handler) -> Handler:
            self.add(
                Route(
                    func,
                    signals.command_received,
                    "command",
                    priority=priority,
                    matcher=matcher,
                    description="command " + ",".join(sorted(wanted)),
                )
            )
            return func

        return decorate

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

        def decorate(func: Handler) -> Handler:
            self.add(
                Route(
                    func,
                    signals.message_added,
                    "message",
                    priority=priority,
                    matcher=matcher,
                    description=f"message {pattern.pattern if pattern else '*'}",
                )
            )
            return func

        return decorate

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

        def decorate(handler: Handler) -> Handler:
            self.add(
                Route(
                    handler,
                    signals.bot_joined_chat,
                    "join",
                    priority=priority,
                    matcher=matcher,
                    description="join",
                )
            )
            return handler

        if func is not None:
            return decorate(func)
        return decorate

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

        def decorate(func: Handler) -> Handler:
            self.add(
                Route(
                    func,
                    signals.event_received,
                    signals.EVENT_KEYWORD,
                    priority=priority,
                    matcher=matcher,
                    description="event " + ",".join(sorted(wanted)),
                )
            )
            return func

        return decorate


#: The router the package-level decorators register with.
router = Router()

on_command = router.on_command
on_message = router.on_message
on_join = router.on_join
on_event = router.on_event
