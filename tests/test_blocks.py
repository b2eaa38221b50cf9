"""KEYBOARD and ATTACH builders produce Bitrix24's structures and refuse oversized ones."""

from __future__ import annotations

import pytest

from imbot_app.outbound.blocks import (
    MAX_BYTES,
    Attach,
    BlockTooLarge,
    Keyboard,
    check_size,
    to_bitrix,
)


def test_keyboard_buttons_and_newlines() -> None:
    keyboard = (
        Keyboard()
        .button("Next", command="/page", params="2", block=True, bg_color="#29619b")
        .newline()
        .button("Docs", link="https://example.com/docs")
        .button("Copy id", action="copy", action_value="42", disabled=True, width=50)
    )
    assert keyboard.to_bitrix() == [
        {
            "TEXT": "Next",
            "DISPLAY": "LINE",
            "COMMAND": "page",
            "COMMAND_PARAMS": "2",
            "BLOCK": "Y",
            "BG_COLOR": "#29619b",
        },
        {"TYPE": "NEWLINE"},
        {"TEXT": "Docs", "DISPLAY": "LINE", "LINK": "https://example.com/docs"},
        {
            "TEXT": "Copy id",
            "DISPLAY": "LINE",
            "ACTION": "COPY",
            "ACTION_VALUE": "42",
            "DISABLED": "Y",
            "WIDTH": "50",
        },
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"command": "a", "link": "https://x"}, {"action": "explode"}],
    ids=["none", "two", "unknown-action"],
)
def test_a_button_needs_exactly_one_valid_action(kwargs) -> None:
    with pytest.raises(ValueError):
        Keyboard().button("x", **kwargs)


def test_attach_blocks() -> None:
    attach = (
        Attach(color="#29619b", id=7)
        .message("Found [b]3[/b] tickets")
        .grid([("Status", "open"), ("Owner", "Ann")])
        .link("https://example.com/t/1", name="Ticket 1", description="first")
        .user("Ann", avatar="https://example.com/a.png")
        .image("https://example.com/i.png", name="shot")
        .file("https://example.com/f.pdf", name="f.pdf", size=1024)
        .delimiter()
    )
    assert attach.to_bitrix() == {
        "ID": 7,
        "COLOR": "#29619b",
        "BLOCKS": [
            {"MESSAGE": "Found [b]3[/b] tickets"},
            {
                "GRID": [
                    {"NAME": "Status", "VALUE": "open", "DISPLAY": "LINE", "WIDTH": 100},
                    {"NAME": "Owner", "VALUE": "Ann", "DISPLAY": "LINE", "WIDTH": 100},
                ]
            },
            {"LINK": {"LINK": "https://example.com/t/1", "NAME": "Ticket 1", "DESC": "first"}},
            {"USER": {"NAME": "Ann", "AVATAR": "https://example.com/a.png"}},
            {"IMAGE": [{"LINK": "https://example.com/i.png", "NAME": "shot"}]},
            {"FILE": [{"LINK": "https://example.com/f.pdf", "NAME": "f.pdf", "SIZE": 1024}]},
            {"DELIMITER": {"SIZE": 200, "COLOR": "#c6c6c6"}},
        ],
    }


def test_oversized_structures_are_refused_before_sending() -> None:
    attach = Attach()
    for i in range(400):
        attach.message(f"line {i}: " + "x" * 80)
    with pytest.raises(BlockTooLarge, match=r"ATTACH is \d+ bytes"):
        attach.to_bitrix()
    keyboard = Keyboard()
    for i in range(300):
        keyboard.button("Ж" * 60, command="c", params=str(i))  # two bytes a letter
    with pytest.raises(BlockTooLarge, match="KEYBOARD"):
        keyboard.to_bitrix()
    with pytest.raises(BlockTooLarge, match="MENU"):
        to_bitrix("MENU", {"ITEMS": [{"TEXT": "y" * MAX_BYTES}]})


def test_size_limit_is_inclusive() -> None:
    overhead = len('[""]')
    fits = ["a" * (MAX_BYTES - overhead)]
    assert check_size("ATTACH", fits) is fits
    with pytest.raises(BlockTooLarge):
        check_size("ATTACH", ["a" * (MAX_BYTES - overhead + 1)])


def test_raw_structures_pass_through_and_none_stays_none() -> None:
    raw = [{"TEXT": "ok", "COMMAND": "help"}]
    assert to_bitrix("KEYBOARD", raw) is raw
    assert to_bitrix("ATTACH", None) is None
    assert to_bitrix("KEYBOARD", Keyboard().button("a", command="b")) == [
        {"TEXT": "a", "DISPLAY": "LINE", "COMMAND": "b", "COMMAND_PARAMS": ""}
    ]
