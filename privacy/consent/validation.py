"""What a recording asks for, checked against the purpose catalogue and the policy.

Pure functions: no database access. A recording validates once against the catalogue it
has, and again if a purpose changed since (see :mod:`privacy.consent.recording`).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from privacy.context import PrivacyContext
from privacy.crypto.keys import Crypto
from privacy.errors import Conflict, InvalidInput, NotFound
from privacy.languages import DEFAULT_LANGUAGE
from privacy.policy.catalogue import Catalogue
from privacy.policy.file import Policy


@dataclass
class ConsentCommand:
    """A sign-up or preference change, as parsed from the request (shape only)."""

    purposes: dict[str, bool]
    source: dict[str, Any]
    subject: dict[str, Any] = field(default_factory=dict)
    subject_id: str | None = None
    notice_version: str | dict[str, str] | None = None
    gpc: bool = False
    language: str = DEFAULT_LANGUAGE  # of the double opt-in mail: not part of what is recorded


    def fingerprint(self, crypto: Crypto) -> str:
        """A keyed MAC of the request (it holds personal data, so no plain hash is stored).
        The mail's language is left out: a repeat in another language records the same."""
        body = {"purposes": self.purposes, "source": self.source, "subject": self.subject,
                "subject_id": self.subject_id, "notice_version": self.notice_version, "gpc": self.gpc}
        return crypto.link_token("idempotency", json.dumps(body, sort_keys=True, default=str))


Notices = dict[str, tuple[str | None, str | None]]


@dataclass(slots=True)
class Wishes:
    """A command checked against one catalogue: normalised values, the wish per purpose
    (Global Privacy Control applied) and the (notice version, text hash) per purpose."""

    catalogue: Catalogue
    values: dict[str, str]
    wishes: dict[str, bool]
    notices: Notices


def checked(ctx: PrivacyContext, cmd: ConsentCommand, catalogue: Catalogue) -> Wishes:
    """``cmd`` checked against ``catalogue``; :class:`InvalidInput` naming each field otherwise."""
    values = _values(ctx.policy, cmd, catalogue)
    wishes = _wishes(cmd, catalogue)
    return Wishes(catalogue, values, wishes, _notices(cmd, wishes, catalogue))


def _values(policy: Policy, cmd: ConsentCommand, catalogue: Catalogue) -> dict[str, str]:
    problems: dict[str, list[str]] = {}
    for code in cmd.purposes:
        if code not in catalogue.purposes:
            problems[f"purposes.{code}"] = [f"'{code}' is not a declared purpose"]
    values, field_problems = policy.normalise_values(cmd.subject, "subject")
    problems.update(field_problems)
    if cmd.subject_id is None and "email" not in cmd.subject:
        problems["subject.email"] = ["is required (or give subject_id)"]
    if problems:
        raise InvalidInput.fields(problems)
    return values


def _wishes(cmd: ConsentCommand, catalogue: Catalogue) -> dict[str, bool]:
    wishes = dict(cmd.purposes)
    if cmd.gpc:
        for p in catalogue.purposes.values():
            if p.gpc_opt_out and p.needs_consent:
                wishes[p.code] = False
    return wishes


def _notices(cmd: ConsentCommand, wishes: dict[str, bool], catalogue: Catalogue) -> Notices:
    """(notice version, text hash) per purpose; the version must be one the purpose had."""
    out: Notices = {}
    given = cmd.notice_version
    problems: dict[str, list[str]] = {}
    for code in wishes:
        purpose = catalogue.purposes[code]
        if isinstance(given, dict):
            version, path = given.get(code), f"notice_version.{code}"
        else:
            version, path = given, "notice_version"
        if version is None and code not in cmd.purposes:
            version = (purpose.notice or {}).get("version")  # declined by a GPC signal alone
        known = catalogue.notices.get(code)
        if known:
            if version is None:
                problems[path] = [f"is required: name the notice version shown for '{code}'"]
            elif version not in known:
                problems[path] = [f"'{version}' is not a notice version of '{code}' "
                                  f"(known: {', '.join(sorted(known))})"]
            out[code] = (version, known.get(version or ""))
        else:
            out[code] = (version, None)
    if problems:
        raise InvalidInput.fields(problems)
    return out


def _age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def check_age(policy: Policy, wishes: Wishes, now: dt.datetime) -> None:
    """Art. 8: a child below the digital age of consent of their country cannot consent."""
    values, catalogue = wishes.values, wishes.catalogue
    if "birth_date" not in values:
        return
    if not any(w and catalogue.purposes[c].needs_consent for c, w in wishes.wishes.items()):
        return
    country = values.get("country")
    limit = policy.age_of_consent_for(country)
    age = _age_on(dt.date.fromisoformat(values["birth_date"]), now.date())
    if age < limit:
        message = f"is below the digital age of consent ({limit}) of {country or 'the default country'}"
        raise InvalidInput("subject.birth_date: " + message, {"subject.birth_date": [message]},
                           code="below_age_of_consent")


def check_subject(crypto: Crypto, subject: Any, cmd: ConsentCommand, values: dict[str, str]) -> None:
    """The subject found for the command may be recorded for: not erased, and (when the
    command names it by id) the e-mail given, if any, is its own."""
    if cmd.subject_id is None:
        if subject is not None and subject.wrapped_key is None:
            # Erased (crypto-shredded): a new sign-up must not quietly bring the person back.
            raise Conflict("this person's data was erased; a new sign-up needs the erasure to be lifted",
                           {"subject.email": ["belongs to an erased subject"]}, code="subject_erased")
        return
    if subject is None or subject.wrapped_key is None:
        raise NotFound(f"subject '{cmd.subject_id}' not found", {"subject_id": ["not found"]})
    if "email" in values and subject.email_index != crypto.blind_index(values["email"]):
        raise InvalidInput.field("subject.email", "does not belong to subject_id; e-mail changes "
                                 "go through a rectification request")
