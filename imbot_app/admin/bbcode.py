"""Bitrix24 chat BB codes rendered as safe HTML, for the admin's chat transcript.

Chat text is whatever people typed, so it is treated as hostile: the whole text is
HTML-escaped **first**, and only then are a few BB codes turned into markup this module writes
itself.  Nothing the user wrote ever reaches the page as HTML; an unknown, unclosed or
misnested tag simply stays visible as the (escaped) text it was.

Supported, case-insensitively as Bitrix24 writes them:

* ``[b]``, ``[i]``, ``[u]``, ``[s]``: bold, italic, underline, strike-through;
* ``[url]https://...[/url]`` and ``[url=https://...]text[/url]``: links, only ``http(s)://``
  and ``mailto:`` (anything else, ``javascript:`` say, renders the text without a link);
* ``[user=N]name[/user]``: a mention, shown as ``@name``;
* ``[br]`` and line breaks: ``<br>``;
* ``[code]...[/code]``: preformatted, with no BB codes inside;
* ``[quote]...[/quote]`` and lines starting with ``>>``: a quotation.

Bounded, because an admin page must render whatever arrives (``"[b]" * 600`` once raised
RecursionError, and ``"[code]" * N`` took quadratic time):

* at most ``IMBOT_ADMIN_TEXT_LIMIT`` characters are rendered, then "… (truncated)";
* at most :data:`MAX_NESTING` tags are open at once; deeper ones stay literal text;
* every pass is linear: each regex is anchored on a literal ``[`` and its only repetition
  stops at the next bracket (or after :data:`MAX_TAG_VALUE` characters), so no character is
  scanned by more than a couple of attempts; closing a tag looks at most MAX_NESTING tags
  down; the tree is walked with an explicit stack, never by recursion.

:func:`measure` counts the steps a rendering took (characters scanned, tokens, nodes
walked); ``tests/test_bbcode_bounds.py`` asserts they grow linearly with the text and
``bench/bbcode.py`` prints the time per KB.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from django.utils.safestring import SafeString, mark_safe

from imbot_app.conf import imbot_settings

__all__ = ["MAX_NESTING", "TRUNCATED", "measure", "render_bbcode"]

#: Tags open at once; the ones beyond stay text (Bitrix24's own messages nest a few deep).
MAX_NESTING = 16
#: Longest ``[tag=value]`` value recognised (a URL, a user id); longer is no tag at all.
MAX_TAG_VALUE = 2048
#: Appended when the text was cut at IMBOT_ADMIN_TEXT_LIMIT characters.
TRUNCATED = '<span class="imbot-truncated">… (truncated)</span>'

# Tags are found in the escaped text: escaping leaves "[", "]" and "=" alone.
_TAG = re.compile(
    rf"\[(/?)(b|i|u|s|url|user|code|quote|br)(?:=([^\[\]]{{0,{MAX_TAG_VALUE}}}))?\]",
    re.IGNORECASE,
)
# Where [code] regions start and end: ">>" lines inside them are not quotes.
_CODE_TAG = re.compile(r"\[(/?)code\]", re.IGNORECASE)
_QUOTE_PREFIX = html.escape(">>")
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s\x00-\x1f\x7f\"'<>`]+", re.IGNORECASE)
_INLINE = {"b": "strong", "i": "em", "u": "u", "s": "s"}
_BLOCKS = frozenset({"code", "quote"})
_BR = "<br>"


class _LineBreak:
    """``[br]``: kept apart from text so a following newline is not swallowed."""


_LINE_BREAK = _LineBreak()


@dataclass(slots=True)
class _Element:
    """An opened tag and what it encloses; ``closed`` once its closing tag was seen."""

    tag: str
    value: str | None
    opener: str
    children: list[_Element | str | _LineBreak] = field(default_factory=list)
    closed: bool = False


_Child = _Element | str | _LineBreak


class _Steps:
    """A deterministic measure of the work done: tests bound it instead of timing it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def render_bbcode(text: str, *, limit: int | None = None) -> SafeString:
    """``text`` with its BB codes as HTML; every character the user typed is escaped.

    At most ``limit`` characters (default ``IMBOT_ADMIN_TEXT_LIMIT``) are rendered.
    """
    return _render(text, limit, _Steps())


def measure(text: str, *, limit: int | None = None) -> tuple[SafeString, int]:
    """:func:`render_bbcode` and the number of steps it took (for tests and the bench)."""
    steps = _Steps()
    return _render(text, limit, steps), steps.count


def _render(text: str, limit: int | None, steps: _Steps) -> SafeString:
    if limit is None:
        limit = int(imbot_settings.ADMIN_TEXT_LIMIT)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    truncated = len(text) > limit
    if truncated:
        text = text[:limit]
    steps.count += len(text)
    escaped = html.escape(text, quote=True)
    rendered = _render_tree(_parse(_quote_lines(escaped, steps), steps), steps)
    return mark_safe(rendered + (TRUNCATED if truncated else ""))  # noqa: S308


# --------------------------------------------------------------------------- quotations


def _quote_lines(escaped: str, steps: _Steps) -> str:
    """Runs of lines starting with ``>>`` become one ``[quote]`` (outside ``[code]``)."""
    if _QUOTE_PREFIX not in escaped:
        return escaped
    out: list[str] = []
    position = 0
    opened: int | None = None
    # A [code] region runs from a [code] to the first [/code] after it (none: no region).
    for found in _CODE_TAG.finditer(escaped):
        steps.count += 1
        if opened is None:
            if not found.group(1):
                opened = found.start()
        elif found.group(1):
            out.append(_quote_segment(escaped[position:opened], steps))
            out.append(escaped[opened : found.end()])
            position, opened = found.end(), None
    out.append(_quote_segment(escaped[position:], steps))
    return "".join(out)


def _quote_segment(segment: str, steps: _Steps) -> str:
    if _QUOTE_PREFIX not in segment:
        return segment
    lines = segment.split("\n")
    steps.count += len(lines)
    out: list[str] = []
    quoted: list[str] = []
    for line in lines:
        if line.startswith(_QUOTE_PREFIX):
            quoted.append(line[len(_QUOTE_PREFIX) :].lstrip(" "))
            continue
        if quoted:
            out.append("[quote]" + "\n".join(quoted) + "[/quote]")
            quoted = []
        out.append(line)
    if quoted:
        out.append("[quote]" + "\n".join(quoted) + "[/quote]")
    # Join with newlines, but none right around a quotation: it is a block of its own.
    pieces: list[str] = []
    for index, piece in enumerate(out):
        if index and not piece.startswith("[quote]") and not out[index - 1].endswith("[/quote]"):
            pieces.append("\n")
        pieces.append(piece)
    return "".join(pieces)


# --------------------------------------------------------------------------- parsing


def _parse(escaped: str, steps: _Steps) -> list[_Child]:
    root = _Element("", None, "")
    stack = [root]
    position = 0
    for found in _TAG.finditer(escaped):
        steps.count += 1 + found.end() - position
        if found.start() > position:
            stack[-1].children.append(escaped[position : found.start()])
        position = found.end()
        closing, tag, value = bool(found.group(1)), found.group(2).lower(), found.group(3)
        current = stack[-1]
        if current.tag == "code" and not (closing and tag == "code"):
            current.children.append(found.group(0))  # no BB codes inside [code]
        elif tag == "br":
            current.children.append(found.group(0) if closing else _LINE_BREAK)
        elif not closing:
            if len(stack) > MAX_NESTING:
                current.children.append(found.group(0))  # too deep: stays text
                continue
            element = _Element(tag, value, found.group(0))
            current.children.append(element)
            stack.append(element)
        else:
            _close(stack, tag, found.group(0), steps)
    steps.count += len(escaped) - position
    if position < len(escaped):
        stack[-1].children.append(escaped[position:])
    return root.children


def _close(stack: list[_Element], tag: str, literal: str, steps: _Steps) -> None:
    """Close the innermost open ``tag``; tags opened inside it and left open stay literal."""
    for depth in range(len(stack) - 1, 0, -1):
        steps.count += 1
        if stack[depth].tag == tag:
            del stack[depth + 1 :]
            stack.pop().closed = True
            return
    stack[-1].children.append(literal)


# --------------------------------------------------------------------------- rendering


@dataclass(slots=True)
class _Frame:
    """One element being rendered: its children, how far along, what closes it."""

    children: list[_Child]
    close: str = ""
    block: bool = False
    index: int = 0
    after_block: bool = False


def _render_tree(children: list[_Child], steps: _Steps) -> str:
    """The HTML of a parsed text, walked depth-first with an explicit stack."""
    out: list[str] = []
    stack = [_Frame(children)]
    while stack:
        frame = stack[-1]
        steps.count += 1
        if frame.index == len(frame.children):
            stack.pop()
            out.append(frame.close)
            if stack:
                stack[-1].after_block = frame.block
            continue
        child = frame.children[frame.index]
        frame.index += 1
        if isinstance(child, _LineBreak):
            out.append(_BR)
            frame.after_block = False
        elif isinstance(child, str):
            steps.count += len(child)
            if frame.after_block and child.startswith("\n"):
                child = child[1:]  # a block already ends the line
            out.append(child.replace("\n", _BR))
            frame.after_block = False
        elif child.closed and child.tag == "code":
            body = "".join(c for c in child.children if isinstance(c, str))
            steps.count += len(body)
            out.append(f'<pre class="imbot-code">{body.strip(chr(10))}</pre>')
            frame.after_block = True
        else:
            opening, closing, inner = _open(child, steps)
            out.append(opening)
            block = child.closed and child.tag in _BLOCKS
            stack.append(_Frame(inner, close=closing, block=block))
    return "".join(out)


def _open(element: _Element, steps: _Steps) -> tuple[str, str, list[_Child]]:
    """(markup before the children, markup after them, the children to render)."""
    if not element.closed:
        return element.opener, "", element.children
    if element.tag in _INLINE:
        name = _INLINE[element.tag]
        return f"<{name}>", f"</{name}>", element.children
    if element.tag == "quote":
        return (
            '<blockquote class="imbot-quote">',
            "</blockquote>",
            _strip_outer_newlines(element.children),
        )
    if element.tag == "url":
        target = element.value
        if target is None:
            target = _plain_text(element.children, steps)
        url = html.unescape(target).strip() if target is not None else ""
        if not _SAFE_URL.fullmatch(url):
            return "", "", element.children
        href = html.escape(url, quote=True)
        opening = f'<a href="{href}" rel="nofollow noopener noreferrer" target="_blank">'
        return opening, "</a>", element.children
    user_id = (element.value or "").strip()
    if not user_id.isdigit():
        return "", "", element.children
    return f'<span class="imbot-mention" title="user {user_id}">@', "</span>", element.children


def _strip_outer_newlines(children: list[_Child]) -> list[_Child]:
    trimmed = list(children)
    if trimmed and isinstance(trimmed[0], str):
        trimmed[0] = trimmed[0].lstrip("\n")
    if trimmed and isinstance(trimmed[-1], str):
        trimmed[-1] = trimmed[-1].rstrip("\n")
    return trimmed


def _plain_text(children: list[_Child], steps: _Steps) -> str | None:
    """The escaped text inside a ``[url]``, without markup; ``None`` if too long for a URL.

    Walked with a stack and cut off after MAX_TAG_VALUE characters or nodes, so nested
    ``[url]`` tags cannot make it quadratic.
    """
    parts: list[str] = []
    length = visited = 0
    pending: list[_Child] = list(reversed(children))
    while pending:
        child = pending.pop()
        visited += 1
        steps.count += 1
        if visited > MAX_TAG_VALUE:
            return None
        if isinstance(child, str):
            parts.append(child)
            length += len(child)
            if length > MAX_TAG_VALUE:
                return None
        elif isinstance(child, _Element):
            pending.extend(reversed(child.children))
    return "".join(parts)
