"""Normalisation of personal field values: the e-mail fast path must agree with email-validator.

The blind index of an e-mail is computed from its normalised form, so two spellings that
normalise differently would make one person two subjects. The fast path for plain
addresses is therefore checked against email-validator's full path on generated input.
"""
from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privacy.policy.fields import _PLAIN_EMAIL, FieldValueError, _plain_email, normalise_email


def full_path(text: str) -> str | None:
    """email-validator's answer: the normalised address, or None when it refuses it."""
    try:
        return str(validate_email(text, check_deliverability=False).normalized).lower()
    except EmailNotValidError:
        return None


plain_shaped = st.from_regex(_PLAIN_EMAIL, fullmatch=True)
near_plain = st.text(alphabet="abcXYZ019-_+.@", min_size=3, max_size=40)


@settings(max_examples=300, deadline=None)
@given(plain_shaped)
@example("Anna.Svensson+club@Example.SE")
@example("a@x-.se")
@example("a@-x.se")
@example("ab@xn--fo-fka.se")
@example("a@x.test")
@example("a@b.localhost")
@example(f"{'a' * 65}@example.se")
@example(f"a@{'b' * 64}.se")
def test_a_plain_address_normalises_as_email_validator_does(text: str) -> None:
    fast = _plain_email(text)
    if fast is not None:
        assert fast == full_path(text)


@settings(max_examples=300, deadline=None)
@given(near_plain)
@example("a..b@example.se")
@example(".a@example.se")
@example("a.@example.se")
@example("a@example..se")
@example("a@example.s")
@example("a@example.123")
@example("a@@example.se")
def test_the_fast_path_never_accepts_what_email_validator_refuses(text: str) -> None:
    fast = _plain_email(text)
    if fast is not None:
        assert fast == full_path(text)


def test_an_ordinary_address_takes_the_fast_path_in_lower_case() -> None:
    assert _plain_email("Anna.Svensson+club@Example.SE") == "anna.svensson+club@example.se"
    assert normalise_email("  Anna.Svensson+club@Example.SE ") == "anna.svensson+club@example.se"


@pytest.mark.parametrize("text", ["ab@xn--fo-fka.se", "a@x.test", "\"quoted\"@example.se", "anna@exämple.se"])
def test_an_unusual_address_is_left_to_email_validator(text: str) -> None:
    assert _plain_email(text) is None


def test_an_invalid_address_is_refused_with_email_validators_reason() -> None:
    with pytest.raises(FieldValueError, match="two periods in a row"):
        normalise_email("anna..svensson@example.se")
