"""What an ``act`` request may be, checked before anything is sent to the page.

Kept apart from ``actions`` (which drives the browser) so a tool can declare and check its
input without loading the CDP client: an unknown action, a target or a value missing where
one is needed or given where none applies, an unknown key name, a bad scroll direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .keys import UnknownKey, parse_key

__all__ = ["ACTIONS", "SCROLL_DIRECTIONS", "ActionInputError", "ActionName", "Request", "check_request"]

ActionName = Literal[
    "tap", "type", "fill", "select", "check", "uncheck", "press", "scroll", "hover",
    "back", "forward", "reload", "accept_dialog", "dismiss_dialog",
]  # fmt: skip
ACTIONS: tuple[str, ...] = get_args(ActionName)

Need = Literal["required", "optional", "never"]

# What each action takes: (target, value). scroll takes a target, a value, or both.
_RULES: dict[str, tuple[Need, Need]] = {
    "tap": ("required", "never"),
    "type": ("optional", "required"),
    "fill": ("required", "required"),
    "select": ("required", "required"),
    "check": ("required", "never"),
    "uncheck": ("required", "never"),
    "press": ("optional", "required"),
    "scroll": ("optional", "optional"),
    "hover": ("required", "never"),
    "back": ("never", "never"),
    "forward": ("never", "never"),
    "reload": ("never", "never"),
    "accept_dialog": ("never", "optional"),
    "dismiss_dialog": ("never", "never"),
}
_VALUE_MEANS = {
    "type": "the text to type",
    "fill": "the field's new value",
    "select": "an option's label or value",
    "press": "a key name such as Enter",
}
SCROLL_DIRECTIONS = ("down", "up", "top", "bottom")
MAX_TEXT = 10_000
MAX_TARGET = 2_000


class ActionInputError(ValueError):
    """The request is malformed; nothing was sent to the page."""


@dataclass(frozen=True)
class Request:
    """A checked request: the action, and its target and value where they apply."""

    action: str
    target: str | None
    value: str | None


def check_request(action: str, target: str | None, value: str | None) -> Request:
    """Refuse a malformed request before anything is sent; empty strings count as absent
    (except a value of ``""`` for fill, which empties the field)."""
    if action not in _RULES:
        raise ActionInputError(f"{action[:40]!r} is not an action; use one of {', '.join(ACTIONS)}.")
    target = target.strip() if target and target.strip() else None
    if target is not None and len(target) > MAX_TARGET:
        raise ActionInputError(
            f"The target is {len(target)} characters long; a ref or selector fits in {MAX_TARGET}."
        )
    if value == "" and action != "fill":
        value = None
    target_rule, value_rule = _RULES[action]
    if target_rule == "required" and target is None:
        raise ActionInputError(
            f"{action} needs a target: a ref from snapshot or find (like 'ab12') or a CSS selector."
        )
    if target_rule == "never" and target is not None:
        raise ActionInputError(f"{action} takes no target; call it again without one.")
    if value_rule == "required" and value is None:
        raise ActionInputError(f"{action} needs a value: {_VALUE_MEANS[action]}.")
    if value_rule == "never" and value is not None:
        raise ActionInputError(f"{action} takes no value; call it again without one.")
    if action == "scroll":
        if target is None and value is None:
            raise ActionInputError(
                "scroll needs a value (down, up, top or bottom) or a target to bring into view."
            )
        if value is not None and value.strip().lower() not in SCROLL_DIRECTIONS:
            raise ActionInputError(f"{value[:40]!r} is not a scroll direction; use down, up, top or bottom.")
        value = value.strip().lower() if value is not None else None
    if action == "press":
        assert value is not None
        try:
            parse_key(value.strip())
        except UnknownKey as exc:
            raise ActionInputError(f"{exc}.") from None
        value = value.strip()
    if value is not None and len(value) > MAX_TEXT:
        raise ActionInputError(
            f"The value is {len(value)} characters long; at most {MAX_TEXT} fit in one act."
        )
    return Request(action, target, value)
