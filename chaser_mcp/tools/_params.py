"""Parameter types shared by tool modules, shaped for a lean input schema.

An optional text parameter is declared ``"type": "string"`` with a default of ``""`` rather than
``anyOf [string, null]``: the schema every prompt pays for is a third the size. A model that sends
``null`` anyway is not refused for it: null reads as "not given", like ``""``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["OptionalText", "lean_optional"]


def _null_as_empty(value: Any) -> Any:
    return "" if value is None else value


OptionalText = Annotated[str, BeforeValidator(_null_as_empty)]
"""A text parameter whose absence is ``""`` (and ``null`` is taken as absent)."""


def lean_optional(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for an optional string whose absence the tool tells apart from ``""``
    (``act``'s value: no value, or an empty one that clears a field): shown as plain
    ``{"type": "string"}``, with neither the default nor the ``null`` branch in the schema."""
    schema.pop("default", None)
    if schema.pop("anyOf", None) is not None:
        schema["type"] = "string"
