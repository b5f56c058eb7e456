"""Reading consent: a subject's states and history, who may be contacted, an officer's look-up."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from privacy.consent import unsubscribe
from privacy.consent.plan import state_view
from privacy.context import PrivacyContext, as_json_time
from privacy.errors import InvalidInput, NotFound
from privacy.ledger import append_audit, timestamp
from privacy.policy.catalogue import load_catalogue
from privacy.policy.fields import FieldValueError, normalise
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.ledger import LedgerRepository
from privacy.storage.repositories.subjects import SubjectRepository


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError):
        return False


class ConsentQueries:
    """``ConsentService.states``, ``history``, ``check`` and ``find_by_email``."""

    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session

    def _known(self, subject_id: str) -> None:
        """:class:`NotFound` unless a subject (erased or not) has this id."""
        if not is_uuid(subject_id):
            raise NotFound(f"subject '{subject_id[:64]}' not found")
        if SubjectRepository(self.session).keys_by_id(subject_id) is None:
            raise NotFound(f"subject '{subject_id}' not found")

    def states(self, subject_id: str, now: dt.datetime) -> dict[str, Any]:
        self._known(subject_id)
        catalogue = load_catalogue(self.database)
        states = ConsentStateRepository(self.session).of_subject(subject_id)
        return {"subject_id": subject_id,
                "consents": {code: state_view(s, catalogue.purposes.get(code), now) for code, s in states.items()}}

    def history(self, subject_id: str) -> dict[str, Any]:
        if not is_uuid(subject_id):
            raise NotFound(f"subject '{subject_id[:64]}' not found")
        events = LedgerRepository(self.session).events_of(subject_id)
        if not events:
            self._known(subject_id)
        return {"subject_id": subject_id, "events": [
            {"purpose": e.purpose, "status": e.status, "event": e.action, "notice_version": e.notice_version,
             "text_hash": e.text_hash, "recorded_at": timestamp(e.recorded_at), "source": json.loads(e.source),
             "hash": e.hash} for e in events]}

    def check(self, purpose_code: str, now: dt.datetime, emails: list[str] | None = None,
              subject_ids: list[str] | None = None, unsubscribe_links: bool = False) -> dict[str, Any]:
        """Who may be contacted for a purpose: set-based, in chunks, never a query per input.

        With ``unsubscribe_links``, also the one-click withdraw link of each allowed input
        (by the input as given): the same query, which then also reads the subject's id,
        and an HMAC per allowed input. A purpose not given on consent has none to give.
        """
        purpose = load_catalogue(self.database).purposes.get(purpose_code)
        if purpose is None:
            raise InvalidInput.field("purpose", f"'{purpose_code}' is not a declared purpose")
        if unsubscribe_links and not purpose.needs_consent:
            raise InvalidInput.field("purpose", f"'{purpose_code}' is not given on consent (legal basis: "
                                     f"{purpose.legal_basis}): there is no withdraw link to give")
        inputs = emails if emails is not None else subject_ids or []
        if emails is not None:
            index = self.ctx.crypto.blind_indexer()
            keys: list[Any] = [index(e) for e in emails]
        else:
            keys = list(inputs)
        cutoff = now - dt.timedelta(days=purpose.consent_valid_days) if purpose.consent_valid_days else None
        unique = list(dict.fromkeys(keys))
        states = ConsentStateRepository(self.session)
        if unsubscribe_links:
            subject_of = states.allowed_subjects(emails is not None, unique, purpose_code, cutoff)
            allowed_keys: set[Any] | dict[Any, str] = subject_of
        else:
            allowed_keys = states.allowed(emails is not None, unique, purpose_code, cutoff)
        allowed: list[str] = []
        denied: list[str] = []
        for given, key in zip(inputs, keys, strict=True):
            (allowed if key in allowed_keys else denied).append(given)
        if not unsubscribe_links:
            return {"purpose": purpose_code, "allowed": allowed, "denied": denied}
        url = unsubscribe.withdraw_urls(self.ctx.crypto, self.ctx.public_url, purpose_code)
        links = {given: url(subject_of[key]) for given, key in zip(inputs, keys, strict=True) if key in subject_of}
        return {"purpose": purpose_code, "allowed": allowed, "denied": denied, "unsubscribe_links": links}

    def find_by_email(self, email: str, actor: str, now: dt.datetime) -> dict[str, Any]:
        """An officer looks a person up: decrypted fields, and an audit entry saying so."""
        try:
            normal = normalise("email", email)
        except FieldValueError as exc:
            raise InvalidInput.field("email", str(exc)) from exc
        crypto = self.ctx.crypto
        with self.database.unit_of_work() as session:
            subjects = SubjectRepository(session)
            subject = subjects.by_email_index(crypto.blind_index(normal))
            if subject is None or subject.wrapped_key is None:
                raise NotFound("no subject with that e-mail")
            dek = crypto.data_key(subject)
            fields = {name: crypto.decrypt_field(dek, subject.id, name, ciphertext)
                      for name, ciphertext in subjects.fields(subject.id).items()}
            append_audit(session, actor, "subject.lookup", now, target=subject.id, details={"by": "email"})
            return {"id": subject.id, "fields": fields, "created_at": as_json_time(subject.created_at),
                    "restricted": subject.restricted}
