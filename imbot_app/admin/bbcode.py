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
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from django.utils.safestring import SafeString, mark_safe

__all__ = ["render_bbcode"]

# Tags are found in the escaped text: escaping leaves "[", "]" and "=" alone.
_TAG = re.compile(r"\[(/?)(b|i|u|s|url|user|code|quote|br)(?:=([^\[\]]*))?\]", re.IGNORECASE)
# [code] regions in the escaped text: ">>" lines inside them are not quotes.
_CODE_REGION = re.compile(r"\[code\].*?\[/code\]", re.IGNORECASE | re.DOTALL)
_QUOTE_PREFIX = html.escape(">>")
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s\x00-\x1f\x7f\"'<>`]+", re.IGNORECASE)
_INLINE = {"b": "strong", "i": "em", "u": "u", "s": "s"}
_BLOCKS = frozenset({"code", "quote"})
_BR = "<br>"


class _LineBreak:
    """``[br]``: kept apart from text so a following newline is not swallowed."""


_LINE_BREAK = _LineBreak()


@dataclass
class _Element:
    """An opened tag and what it encloses; ``closed`` once its closing tag was seen."""

    tag: str
    value: str | None
    opener: str
    children: list[_Element | str | _LineBreak] = field(default_factory=list)
    closed: bool = False


_Child = _Element | str | _LineBreak


def render_bbcode(text: str) -> SafeString:
    """``text`` with its BB codes as HTML; every character the user typed is escaped."""
    escaped = html.escape(text.replace("\r\n", "\n").replace("\r", "\n"), quote=True)
    return mark_safe(_render_children(_parse(_quote_lines(escaped))))  # noqa: S308


# --------------------------------------------------------------------------- parsing


def _quote_lines(escaped: str) -> str:
    """Runs of lines starting with ``>>`` become one ``[quote]`` (outside ``[code]``)."""
    out: list[str] = []
    position = 0
    for region in _CODE_REGION.finditer(escaped):
        out.append(_quote_segment(escaped[position : region.start()]))
        out.append(region.group(0))
        position = region.end()
    out.append(_quote_segment(escaped[position:]))
    return "".join(out)


def _quote_segment(segment: str) -> str:
    if _QUOTE_PREFIX not in segment:
        return segment
    lines = segment.split("\n")
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
    result = ""
    for index, piece in enumerate(out):
        if index and not piece.startswith("[quote]") and not out[index - 1].endswith("[/quote]"):
            result += "\n"
        result += piece
    return result


def _parse(escaped: str) -> list[_Child]:
    root = _Element("", None, "")
    stack = [root]
    position = 0
    for found in _TAG.finditer(escaped):
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
            element = _Element(tag, value, found.group(0))
            current.children.append(element)
            stack.append(element)
        else:
            _close(stack, tag, found.group(0))
    if position < len(escaped):
        stack[-1].children.append(escaped[position:])
    return root.children


def _close(stack: list[_Element], tag: str, literal: str) -> None:
    """Close the innermost open ``tag``; tags opened inside it and left open stay literal."""
    for depth in range(len(stack) - 1, 0, -1):
        if stack[depth].tag == tag:
            del stack[depth + 1 :]
            stack.pop().closed = True
            return
    stack[-1].children.append(literal)


# --------------------------------------------------------------------------- rendering


def _render_children(children: list[_Child]) -> str:
    out: list[str] = []
    after_block = False
    for child in children:
        if isinstance(child, _LineBreak):
            out.append(_BR)
            after_block = False
        elif isinstance(child, str):
            if after_block and child.startswith("\n"):
                child = child[1:]  # a block already ends the line
            out.append(child.replace("\n", _BR))
            after_block = False
        else:
            out.append(_render_element(child))
            after_block = child.closed and child.tag in _BLOCKS
    return "".join(out)


def _render_element(element: _Element) -> str:
    if not element.closed:
        return element.opener + _render_children(element.children)
    if element.tag in _INLINE:
        name = _INLINE[element.tag]
        return f"<{name}>{_render_children(element.children)}</{name}>"
    if element.tag == "code":
        body = "".join(c if isinstance(c, str) else "" for c in element.children)
        return f'<pre class="imbot-code">{body.strip(chr(10))}</pre>'
    if element.tag == "quote":
        body = _render_children(_strip_outer_newlines(element.children))
        return f'<blockquote class="imbot-quote">{body}</blockquote>'
    if element.tag == "url":
        return _render_link(element)
    return _render_mention(element)


def _strip_outer_newlines(children: list[_Child]) -> list[_Child]:
    trimmed = list(children)
    if trimmed and isinstance(trimmed[0], str):
        trimmed[0] = trimmed[0].lstrip("\n")
    if trimmed and isinstance(trimmed[-1], str):
        trimmed[-1] = trimmed[-1].rstrip("\n")
    return trimmed


def _plain_text(children: list[_Child]) -> str:
    """The escaped text inside an element, without any markup."""
    parts: list[str] = []
    for child in children:
        if isinstance(child, str):
            parts.append(child)
        elif isinstance(child, _Element):
            parts.append(_plain_text(child.children))
    return "".join(parts)


def _render_link(element: _Element) -> str:
    label = _render_children(element.children)
    target = element.value if element.value is not None else _plain_text(element.children)
    url = html.unescape(target).strip()
    if not _SAFE_URL.fullmatch(url):
        return label
    href = html.escape(url, quote=True)
    return f'<a href="{href}" rel="nofollow noopener noreferrer" target="_blank">{label}</a>'


def _render_mention(element: _Element) -> str:
    label = _render_children(element.children)
    user_id = (element.value or "").strip()
    if not user_id.isdigit():
        return label
    return f'<span class="imbot-mention" title="user {user_id}">@{label}</span>'
