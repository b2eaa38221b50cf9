"""Handler patterns meet attacker text: their matching time and text length are bounded."""

from __future__ import annotations

import re

import pytest
import regex

from imbot_app import on_message
from imbot_app.dispatch.context import MessageContext
from imbot_app.dispatch.patterns import PatternTimeout, compile_pattern, search
from imbot_app.models import Event, HandlerRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_routes")]

# Nested alternatives that overlap: exponential backtracking when the text does not end
# the way the pattern wants.  Python's re needs seconds for this text (and doubles that for
# every two more characters); it is not a contrived regex, just a careless one.
CATASTROPHIC = r"(a|aa)+$"
HOSTILE_TEXT = "a" * 34 + "b"


def test_a_pattern_that_times_out_is_that_handlers_failure_and_the_event_finishes(
    factory, deliver
) -> None:
    others: list[str] = []

    @on_message(regex=CATASTROPHIC, priority=10)
    def careless(message: MessageContext, *groups: str) -> None:
        raise AssertionError("never matched, never called")

    @on_message
    def everything(message: MessageContext) -> None:
        others.append(message.text)

    deliver(factory.message(HOSTILE_TEXT))

    event = Event.objects.get()
    assert event.status == Event.Status.FAILED  # finished: not left `received`
    assert event.processed_at is not None and event.claimed_by == ""
    timed_out, ran = HandlerRun.objects.order_by("id")
    assert timed_out.handler.endswith("careless")
    assert timed_out.status == HandlerRun.Status.FAILED
    assert timed_out.error == (
        "PatternTimeout: pattern '(a|aa)+$' timed out after 0.1 s on a 35-character text"
    )
    assert "timed out after 0.1 s" in event.error
    # The other handler of the event still ran.
    assert ran.handler.endswith("everything") and ran.status == HandlerRun.Status.SUCCEEDED
    assert others == [HOSTILE_TEXT]


def test_the_timeout_is_a_setting(factory, deliver, settings) -> None:
    settings.IMBOT_REGEX_TIMEOUT = 0.02

    @on_message(regex=CATASTROPHIC)
    def careless(message: MessageContext, *groups: str) -> None:
        raise AssertionError("never called")

    deliver(factory.message(HOSTILE_TEXT))
    run = HandlerRun.objects.get()
    assert run.status == HandlerRun.Status.FAILED
    assert "timed out after 0.02 s" in run.error


def test_the_text_a_pattern_sees_is_capped(factory, deliver, settings) -> None:
    settings.IMBOT_REGEX_MAX_TEXT = 12
    seen: list[str] = []

    @on_message(regex=r"order (\d+)")
    def order(message: MessageContext, number: str) -> None:
        seen.append(number)

    deliver(factory.message("order 7, and much later order 8"))
    deliver(factory.message("much later: order 9"))  # beyond the first 12 characters
    assert seen == ["7"]


def test_re_semantics_are_kept_groups_and_flags(factory, deliver) -> None:
    seen: list[tuple[str, ...]] = []

    @on_message(regex=re.compile(r"^ORDER (\w+) (\d+)$", re.IGNORECASE | re.ASCII))
    def positional(message: MessageContext, word: str, number: str) -> None:
        seen.append((word, number))

    @on_message(regex=r"(?i)^order (?P<word>\w+)")
    def named(message: MessageContext, word: str) -> None:
        seen.append(("named", word))

    deliver(factory.message("order pizza 42"))
    deliver(factory.message("order пицца 43"))  # \w is ASCII-only for the first pattern
    assert seen == [("pizza", "42"), ("named", "pizza"), ("named", "пицца")]


def test_compiled_patterns_keep_their_flags() -> None:
    compiled = compile_pattern(re.compile(r"a.b", re.DOTALL | re.MULTILINE | re.IGNORECASE))
    assert isinstance(compiled, regex.Pattern)
    assert search(compiled, "xA\nB")
    ascii_only = compile_pattern(re.compile(r"^\w+$", re.ASCII))
    assert search(ascii_only, "abc") and not search(ascii_only, "äbc")
    own = regex.compile(r"x")
    assert compile_pattern(own) is own


def test_a_pattern_regex_cannot_compile_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="cannot compile the message pattern"):
        on_message(regex=r"(unclosed")


def test_search_raises_pattern_timeout_directly() -> None:
    with pytest.raises(PatternTimeout, match=r"timed out after 0.1 s"):
        search(compile_pattern(CATASTROPHIC), HOSTILE_TEXT)
