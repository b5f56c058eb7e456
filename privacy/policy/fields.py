"""Validation and normalisation of personal field values, by catalogue type.

Each function takes what a client sent and returns the canonical string that is
encrypted and stored, or raises :class:`FieldValueError` with a message for the client
(which never repeats the value itself: it may be personal data).
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import phonenumbers
import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

FIELD_TYPES = ("email", "phone", "string", "date", "country")
COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries)
MAX_EMAIL_LENGTH = 254

# Plain addresses (nearly every sign-up) that email-validator accepts and normalises to
# their lower case: a dot-atom local part of letters, digits, ``_``, ``+`` and ``-``;
# host labels of letters, digits and single inner hyphens; an alphabetic top-level domain.
# Anything else (quoted or unusual local parts, IDNA, ``xn--``, special-use domains such as
# ``.test``) takes email-validator's full path, which is ten times slower.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]{1,64}(?:\.[a-z0-9_+-]{1,64})*"
    r"@(?:[a-z0-9](?:[a-z0-9]|-(?!-)){0,61}[a-z0-9]?\.)+[a-z]{2,63}", re.ASCII | re.IGNORECASE)
_PLAIN_LOCAL_MAX = 64
_PLAIN_DOMAIN_MAX = 200
_SPECIAL_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


class FieldValueError(ValueError):
    """A value that does not fit its field's type; the message names no personal data."""


# Format characters that hide or reorder text (bidi overrides, zero-width space, BOM, word
# joiner). ZWJ and ZWNJ (U+200D, U+200C) stay allowed: Indic and Persian names need them.
HIDDEN_FORMAT = frozenset("\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")


def _require_str(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldValueError("must be a string")
    if value.isascii() and value.isprintable():  # the common case, with nothing to look for
        return value.strip()
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in value):
        raise FieldValueError("contains control or unassigned characters")
    if any(ch in HIDDEN_FORMAT for ch in value):
        raise FieldValueError("contains invisible direction or zero-width characters")
    return unicodedata.normalize("NFC", value.strip())


def normalise_email(value: Any) -> str:
    text = _require_str(value)
    if not text:
        raise FieldValueError("must not be empty")
    if len(text) > MAX_EMAIL_LENGTH:
        raise FieldValueError(f"is longer than {MAX_EMAIL_LENGTH} characters")
    plain = _plain_email(text)
    if plain is not None:
        return plain
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldValueError(f"is not a valid e-mail address ({_reason(exc)})") from exc
    return str(result.normalized).lower()


def _plain_email(text: str) -> str | None:
    """``text`` normalised, when it is a plain address (see ``_PLAIN_EMAIL``); else None."""
    if not _PLAIN_EMAIL.fullmatch(text):
        return None
    local, _, domain = text.lower().rpartition("@")
    labels = domain.split(".")
    if (len(local) > _PLAIN_LOCAL_MAX or len(domain) > _PLAIN_DOMAIN_MAX or labels[-1] in _SPECIAL_TLDS
            or any(len(label) > 63 or label.startswith("-") or label.endswith("-") for label in labels)):
        return None
    return f"{local}@{domain}"


def _reason(exc: EmailNotValidError) -> str:
    # email-validator's messages describe the shape, not the value; keep the first clause.
    return str(exc).split(". ")[0].rstrip(".")


def normalise_phone(value: Any, region: str | None = None) -> str:
    text = _require_str(value)
    try:
        number = phonenumbers.parse(text, region or "SE")
    except phonenumbers.NumberParseException as exc:
        raise FieldValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_date(value: Any, today: dt.date | None = None) -> str:
    text = _require_str(value)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise FieldValueError("is not a date in the form YYYY-MM-DD") from exc
    if len(text) != 10:
        raise FieldValueError("is not a date in the form YYYY-MM-DD")
    if day.year < 1900:
        raise FieldValueError("is before 1900")
    if day > (today or dt.date.today()):
        raise FieldValueError("is in the future")
    return day.isoformat()


def normalise_country(value: Any) -> str:
    text = _require_str(value).upper()
    if text not in COUNTRY_CODES:
        raise FieldValueError("is not an ISO 3166-1 alpha-2 country code")
    return text


def make_string_normaliser(max_length: int | None) -> Callable[[Any], str]:
    def normalise_string(value: Any) -> str:
        text = _require_str(value)
        if not text or all(unicodedata.category(ch) in ("Cf", "Zs", "Mn") for ch in text):
            raise FieldValueError("must not be empty")
        if max_length is not None and len(text) > max_length:
            raise FieldValueError(f"is longer than {max_length} characters")
        return text

    return normalise_string


def normalise(field_type: str, value: Any, max_length: int | None = None) -> str:
    """Normalise ``value`` for a catalogue field of ``field_type``."""
    if field_type == "email":
        return normalise_email(value)
    if field_type == "phone":
        return normalise_phone(value)
    if field_type == "date":
        return normalise_date(value)
    if field_type == "country":
        return normalise_country(value)
    return make_string_normaliser(max_length)(value)
