"""The BB-code renderer is bounded: no recursion, capped nesting, linear work, capped length.

Admin pages render whatever text arrived, so a hostile message must neither crash them
(``"[b]" * 600`` once raised RecursionError: the chat page answered 500 for good) nor stall
them (``"[code]" * N`` was quadratic: 240 KB took 31 s).  Time is never asserted: the
renderer counts its own steps (:func:`imbot_app.admin.bbcode.measure`) and these tests bound them
per character; bench/bbcode.py prints the milliseconds per KB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imbot_app.admin.bbcode import MAX_NESTING, TRUNCATED, measure, render_bbcode
from imbot_app.models import Message
from tests.admin_scenes import chat_of, connected_portal, talk
from tests.test_bbcode import ALLOWED_ATTRIBUTES, ALLOWED_TAGS

# Steps per character of input, whatever the input: escaping makes up to 6 characters of one
# (" -> &quot;), each scanned once while parsing and once while rendering.
STEPS_PER_CHAR = 16
VOID = {"br"}
OUR_TAG = re.compile(r"</?(?:strong|em|u|s|a|br|pre|blockquote|span)(?:\s[^<>]*)?>")


class Balance(HTMLParser):
    """Checks that every element is known, closed, and closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRIBUTES and value is not None, (name, value)
            if name == "href":
                assert value.lower().startswith(("http://", "https://", "mailto:")), value
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise AssertionError(f"self-closing <{tag}/> is not written by the renderer")

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open)
        self.open.pop()


def assert_well_formed_and_escaped(out: str) -> None:
    checker = Balance()
    checker.feed(out)
    checker.close()
    assert checker.open == [], checker.open
    # Outside the renderer's own tags there is no markup at all: the user's text is escaped.
    rest = OUR_TAG.sub("", out)
    assert "<" not in rest and ">" not in rest and '"' not in rest, rest[:200]


def assert_bounded(text: str) -> str:
    out, steps = measure(text, limit=len(text) + 1)
    assert steps <= STEPS_PER_CHAR * len(text) + 64, (steps, len(text))
    assert_well_formed_and_escaped(out)
    return out


# --------------------------------------------------------------------------- the reported ones


def test_six_hundred_nested_bold_tags_render_instead_of_raising() -> None:
    # Never closed, so nothing is bold: the text stays as typed.
    assert assert_bounded("[b]" * 600) == "[b]" * 600
    closed = assert_bounded("[b]" * 600 + "x" + "[/b]" * 600)
    assert closed.count("<strong>") == closed.count("</strong>") == MAX_NESTING


def test_nesting_beyond_the_cap_stays_literal_escaped_text() -> None:
    deep = MAX_NESTING + 4
    out = render_bbcode("[b]" * deep + "<x>" + "[/b]" * deep)
    assert out == (
        "<strong>" * MAX_NESTING + "[b]" * 4 + "&lt;x&gt;" + "</strong>" * MAX_NESTING + "[/b]" * 4
    )


def test_unclosed_code_repeated_is_linear() -> None:
    _, steps_small = measure("[code]" * 1_000, limit=10**6)
    large, steps_large = measure("[code]" * 40_000, limit=10**6)  # 240 KB: 31 s before
    assert large == "[code]" * 40_000
    assert steps_large <= 40 * steps_small * 1.05  # 40 times the text, 40 times the work


HOSTILE: dict[str, Callable[[int], str]] = {
    "nested": lambda n: "[b]" * n,
    "code": lambda n: "[code]" * n,
    "long value": lambda n: "[url=" + "a" * n,
    "values": lambda n: "[url=" * n,
    "misnested": lambda n: "[b][i]" * n + "[/b]" * n,
    "stray closers under a full stack": lambda n: "[b]" * MAX_NESTING + "[/i]" * n,
    "nested urls around many tags": lambda n: "[url]" * MAX_NESTING + "[b][/b]" * n,
    "quote lines": lambda n: ">> x\n" * n,
    "quote lines in code": lambda n: "[code]>>\n" * n,
    "metacharacters": lambda n: "&<>\"'" * n,
}


@pytest.mark.parametrize("shape", HOSTILE)
def test_work_grows_linearly_with_the_text(shape: str) -> None:
    per_char = []
    for size in (1_000, 10_000, 100_000):
        text = HOSTILE[shape](size)[:size]
        _, steps = measure(text, limit=size)
        assert steps <= STEPS_PER_CHAR * size + 64
        per_char.append(steps / size)
    # Flat, not growing: a quadratic pass would multiply this by 10 at each size.
    assert per_char[2] <= per_char[0] * 1.1 + 0.1, per_char


# --------------------------------------------------------------------------- properties

PIECES = st.sampled_from(
    [
        "[b]", "[/b]", "[i]", "[/i]", "[u]", "[/u]", "[s]", "[/s]", "[url]", "[/url]",
        "[url=https://ok.example/?a=1&b=2]", "[url=javascript:alert(1)]", "[URL=mailto:a@b]",
        '[url="><script>]', "[user=5]", "[user=<b>]", "[/user]", "[code]", "[/code]",
        "[quote]", "[/quote]", "[br]", "[/br]", ">>", ">> ", "\n", "\r\n", "<", ">", "&", '"',
        "'", "<script>", "</pre>", "</strong>", "[", "]", "=", "[url=", "https://x.example",
    ]
)  # fmt: skip
RUNS = st.tuples(st.one_of(PIECES, st.text(max_size=4)), st.integers(1, 400))


@settings(max_examples=150, deadline=None)
@given(st.lists(RUNS, max_size=40))
def test_long_hostile_inputs_give_balanced_escaped_html_in_linear_steps(runs) -> None:
    assert_bounded("".join(piece * count for piece, count in runs))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=300))
def test_interleaved_tags_give_balanced_escaped_html(pieces: list[str]) -> None:
    assert_bounded("".join(pieces))


# --------------------------------------------------------------------------- length


def test_text_beyond_the_limit_is_cut_with_a_marker(settings) -> None:
    settings.IMBOT_ADMIN_TEXT_LIMIT = 12
    assert render_bbcode("[b]short[/b]") == "<strong>short</strong>"  # 12 characters
    cut = render_bbcode("[b]0123456789[/b]")
    assert cut == "[b]012345678" + TRUNCATED
    assert_well_formed_and_escaped(cut)
    assert render_bbcode("x" * 11, limit=20) == "x" * 11


# --------------------------------------------------------------------------- through the admin


@pytest.mark.django_db
@pytest.mark.usefixtures("isolated_routes")
def test_the_admin_renders_hostile_messages(admin_client, fake_b24, settings, deliver) -> None:
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    live = connected_portal(fake_b24)
    hostile = ["[b]" * 600, "[code]" * 20_000, "[b]" * 600 + "x" + "[/b]" * 600]
    events = talk(live, deliver, hostile)
    chat = chat_of(events[0])

    response = admin_client.get(f"/admin/imbot_app/chat/{chat.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "[b]" * 600 in html
    assert TRUNCATED in html  # 120 KB of [code] is cut at IMBOT_ADMIN_TEXT_LIMIT

    for message in Message.objects.filter(chat=chat):
        page = admin_client.get(f"/admin/imbot_app/message/{message.pk}/change/")
        assert page.status_code == 200, message.text[:20]
