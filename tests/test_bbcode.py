"""BB codes in chat text become safe HTML: escaped first, a short list of tags, nothing else."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from imbot_app.admin.bbcode import render_bbcode

ALLOWED_TAGS = {"strong", "em", "u", "s", "a", "br", "pre", "blockquote", "span"}
ALLOWED_ATTRIBUTES = {"href", "rel", "target", "class", "title"}


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_in(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = TagCollector()
    parser.feed(html)
    parser.close()
    return parser.tags


def test_basic_formatting() -> None:
    assert render_bbcode("[b]bold[/b] [i]it[/i] [u]under[/u] [s]gone[/s]") == (
        "<strong>bold</strong> <em>it</em> <u>under</u> <s>gone</s>"
    )


def test_tags_are_case_insensitive_as_bitrix24_writes_them() -> None:
    assert render_bbcode("[B]x[/B]") == "<strong>x</strong>"


def test_html_typed_by_a_user_is_shown_as_text() -> None:
    out = render_bbcode('<script>alert("x")</script><img src=x onerror=alert(1)>')
    assert "<script" not in out and "<img" not in out
    assert out.startswith("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")


def test_links_only_for_http_https_and_mailto() -> None:
    assert render_bbcode("[url]https://example.com/a?b=1&c=2[/url]") == (
        '<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener noreferrer" '
        'target="_blank">https://example.com/a?b=1&amp;c=2</a>'
    )
    assert 'href="mailto:a@b.c"' in render_bbcode("[url=mailto:a@b.c]mail me[/url]")
    for hostile in (
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<b>x</b>",
        'https://x.com" onmouseover="alert(1)',
        "//evil.example/",
    ):
        out = render_bbcode(f"[url={hostile}]click[/url]")
        assert "<a" not in out, hostile
        assert "click" in out


def test_mentions() -> None:
    assert render_bbcode("[USER=1269]John Smith[/USER], hi") == (
        '<span class="imbot-mention" title="user 1269">@John Smith</span>, hi'
    )
    assert render_bbcode("[user=x]Eve[/user]") == "Eve"  # not an id: no mention markup


def test_line_breaks_and_br() -> None:
    assert render_bbcode("one\ntwo\r\nthree[br]four") == "one<br>two<br>three<br>four"


def test_code_keeps_its_text_and_ignores_bb_codes_inside() -> None:
    assert render_bbcode("[code]a [b]b[/b]\n<c>[/code]\nafter") == (
        '<pre class="imbot-code">a [b]b[/b]\n&lt;c&gt;</pre>after'
    )


def test_quotes_by_tag_and_by_double_angle_lines() -> None:
    assert render_bbcode("[quote]said[/quote]\nreply") == (
        '<blockquote class="imbot-quote">said</blockquote>reply'
    )
    assert render_bbcode("earlier:\n>> first\n>>second\nmy answer") == (
        'earlier:<blockquote class="imbot-quote">first<br>second</blockquote>my answer'
    )
    # Not inside [code].
    assert "blockquote" not in render_bbcode("[code]>> not a quote[/code]")


def test_unclosed_unknown_and_misnested_tags_stay_text() -> None:
    assert render_bbcode("[b]never closed") == "[b]never closed"
    assert render_bbcode("[color=red]x[/color]") == "[color=red]x[/color]"
    assert render_bbcode("[/i]stray") == "[/i]stray"
    assert render_bbcode("[b][i]x[/b][/i]") == "<strong>[i]x</strong>[/i]"


BB_PIECES = st.sampled_from(
    [
        "[b]", "[/b]", "[i]", "[/i]", "[u]", "[/u]", "[s]", "[/s]", "[url]", "[/url]",
        "[url=https://ok.example/?a=1&b=2]", "[url=javascript:alert(1)]", '[url="x" y=z]',
        "[user=5]", "[user=<b>]", "[/user]", "[code]", "[/code]", "[quote]", "[/quote]",
        "[br]", ">>", "\n", "<", ">", "&", '"', "'", "<script>", "</pre>", "javascript:",
        "onerror=", "[", "]", "=", "text",
    ]
)  # fmt: skip


@given(st.lists(st.one_of(BB_PIECES, st.text(max_size=5)), max_size=30))
def test_any_input_gives_only_known_tags_and_safe_links(pieces: list[str]) -> None:
    out = render_bbcode("".join(pieces))
    for tag, attributes in tags_in(out):
        assert tag in ALLOWED_TAGS, (tag, out)
        assert set(attributes) <= ALLOWED_ATTRIBUTES, (attributes, out)
        for name, value in attributes.items():
            assert value is not None
            if name == "href":
                assert value.lower().startswith(("http://", "https://", "mailto:")), out
            assert not name.startswith("on")
