"""Marshmallow building blocks shared by the policy file and the HTTP schemas."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

# C0/C1 control characters (NUL, newline, ESC ...) and lone surrogates, which JSON can carry
# ("\u0000", "\ud800") but no stored or echoed string should: PostgreSQL refuses NUL in text,
# and a lone surrogate cannot be encoded as UTF-8 (hashing, blind indexes, the ledger).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_EXCEPT_NEWLINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "contains control characters or lone surrogates"


def no_control_characters(value: str) -> None:
    """Validator for one-line strings: refuse CONTROL_CHARACTERS."""
    if CONTROL_CHARACTERS.search(value):
        raise ValidationError(CONTROL_MESSAGE)


def no_control_characters_but_newlines(value: str) -> None:
    """Validator for running text (notices): newlines and tabs are fine, the rest is not."""
    if CONTROL_EXCEPT_NEWLINES.search(value):
        raise ValidationError(CONTROL_MESSAGE)


def text(*validators: Callable[[Any], Any], multiline: bool = False, **kwargs: Any) -> fields.String:
    """A string field that refuses control characters and lone surrogates."""
    guard = no_control_characters_but_newlines if multiline else no_control_characters
    return fields.String(validate=[guard, *validators], **kwargs)


def strict_boolean(value: Any) -> bool:
    """JSON ``true`` or ``false`` only: ``"yes"`` or ``1`` is not a consent."""
    if not isinstance(value, bool):
        raise ValidationError("must be true or false")
    return value


class StrictBoolean(fields.Field):
    """:func:`strict_boolean` as a marshmallow field."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        return strict_boolean(value)


class StrictSchema(Schema):
    """A schema that refuses unknown keys (naming them) instead of dropping them silently."""

    class Meta:
        unknown = RAISE
