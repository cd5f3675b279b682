"""Key names an agent writes (``Enter``, ``Shift+Tab``, ``a``) as CDP ``Input.dispatchKeyEvent`` pairs.

A small US-keyboard table in the spirit of Puppeteer's: the keys pages listen for (Enter,
Tab, Escape, arrows, editing keys) plus any single printable character. A name outside
it is refused before anything is sent, with the names it knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Key", "UnknownKey", "key_events", "parse_key", "text_events"]


class UnknownKey(ValueError):
    """The key name is not one this table knows."""


@dataclass(frozen=True)
class Key:
    """One key: its DOM ``key`` and ``code``, the legacy ``keyCode``, and the text it types (if any)."""

    key: str
    code: str
    key_code: int
    text: str = ""


_NAMED: dict[str, Key] = {
    "Enter": Key("Enter", "Enter", 13, "\r"),
    "Tab": Key("Tab", "Tab", 9),
    "Escape": Key("Escape", "Escape", 27),
    "Backspace": Key("Backspace", "Backspace", 8),
    "Delete": Key("Delete", "Delete", 46),
    "Insert": Key("Insert", "Insert", 45),
    "Space": Key(" ", "Space", 32, " "),
    "ArrowUp": Key("ArrowUp", "ArrowUp", 38),
    "ArrowDown": Key("ArrowDown", "ArrowDown", 40),
    "ArrowLeft": Key("ArrowLeft", "ArrowLeft", 37),
    "ArrowRight": Key("ArrowRight", "ArrowRight", 39),
    "Home": Key("Home", "Home", 36),
    "End": Key("End", "End", 35),
    "PageUp": Key("PageUp", "PageUp", 33),
    "PageDown": Key("PageDown", "PageDown", 34),
}
_ALIASES = {
    "return": "Enter",
    "esc": "Escape",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "del": "Delete",
    " ": "Space",
}
_BY_LOWER = {name.lower(): name for name in _NAMED} | _ALIASES

# CDP modifier bits, and the names agents write for them.
_MODIFIERS = {"alt": 1, "control": 2, "ctrl": 2, "meta": 4, "cmd": 4, "command": 4, "shift": 8}

_PUNCTUATION = {
    "-": ("Minus", 189), "=": ("Equal", 187), "[": ("BracketLeft", 219), "]": ("BracketRight", 221),
    "\\": ("Backslash", 220), ";": ("Semicolon", 186), "'": ("Quote", 222), ",": ("Comma", 188),
    ".": ("Period", 190), "/": ("Slash", 191), "`": ("Backquote", 192),
}  # fmt: skip


def _character(char: str) -> Key:
    """A printable character as a key press (its code and keyCode when it is on a US keyboard)."""
    if char.isascii() and char.isalpha():
        return Key(char, f"Key{char.upper()}", ord(char.upper()), char)
    if char.isdigit() and char.isascii():
        return Key(char, f"Digit{char}", ord(char), char)
    code, key_code = _PUNCTUATION.get(char, ("", 0))
    return Key(char, code, key_code, char)


def parse_key(name: str) -> tuple[Key, int]:
    """``"Shift+Tab"`` -> (Tab, the Shift bit). Raises UnknownKey with the names it knows."""
    *modifier_names, key_name = name.split("+") if name != "+" else ["+"]
    modifiers = 0
    for modifier in modifier_names:
        bit = _MODIFIERS.get(modifier.strip().lower())
        if bit is None:
            raise UnknownKey(f"{modifier!r} is not a modifier key (use Shift, Control, Alt or Meta)")
        modifiers |= bit
    canonical = _BY_LOWER.get(key_name.lower()) if len(key_name) != 1 or key_name == " " else None
    if canonical:
        key = _NAMED[canonical]
    elif len(key_name) == 1 and key_name.isprintable():
        key = _character(key_name)
    else:
        known = ", ".join(_NAMED)
        raise UnknownKey(f"{key_name[:40]!r} is not a key name this server knows ({known}, or one character)")
    return key, modifiers


def key_events(key: Key, modifiers: int = 0) -> list[dict[str, Any]]:
    """The keyDown/keyUp pair for one press; with Control/Alt/Meta held, nothing is typed."""
    text = key.text if not modifiers & (1 | 2 | 4) else ""
    down: dict[str, Any] = {
        "type": "keyDown" if text else "rawKeyDown",
        "key": key.key,
        "code": key.code,
        "windowsVirtualKeyCode": key.key_code,
        "modifiers": modifiers,
    }
    if text:
        down["text"] = down["unmodifiedText"] = text
    up = {
        "type": "keyUp",
        "key": key.key,
        "code": key.code,
        "windowsVirtualKeyCode": key.key_code,
        "modifiers": modifiers,
    }
    return [down, up]


def text_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Keystrokes for ``text``, as (CDP method, params): a key press per character, a newline as
    Enter, and a character no US keyboard has (é, 漢, an emoji) inserted as text, as an IME would."""
    out: list[tuple[str, dict[str, Any]]] = []
    for char in text.replace("\r\n", "\n"):
        if char == "\n":
            out.extend(("Input.dispatchKeyEvent", event) for event in key_events(_NAMED["Enter"]))
        elif char.isascii() and char.isprintable():
            out.extend(("Input.dispatchKeyEvent", event) for event in key_events(_character(char)))
        else:
            out.append(("Input.insertText", {"text": char}))
    return out
