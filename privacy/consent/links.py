"""What the links mailed to a customer do: confirm a double opt-in, withdraw in one click;
and the withdraw link that another system's mails carry."""
from __future__ import annotations

import datetime as dt
from typing import Any

from privacy.consent import changes, confirm_links, queries, unsubscribe
from privacy.consent.plan import ACTIVE
from privacy.context import PrivacyContext
from privacy.crypto.keys import token_hash
from privacy.errors import Gone, InvalidInput, NotFound
from privacy.policy.catalogue import load_catalogue
from privacy.storage.repositories.confirmations import ConfirmationRepository
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.subjects import SubjectRepository
from privacy.storage.statements import AnyTransaction
from privacy.tasks.planning import ConsentFanout


def _link_used() -> Gone:
    return Gone("this confirmation link was already used", {"token": ["already used"]}, code="token_used")


def _unknown() -> NotFound:
    return NotFound("unknown confirmation link", {"token": ["unknown"]})


def _expired() -> Gone:
    return Gone("this confirmation link has expired", {"token": ["expired"]}, code="token_expired")


class ConsentLinks:
    """Confirm and withdraw links (``ConsentService.confirm``, ``withdraw_by_link`` and
    ``unsubscribe_link``)."""

    def __init__(self, ctx: PrivacyContext) -> None:
        self.ctx = ctx
        self.database = ctx.database

    def confirm(self, token: str, now: dt.datetime) -> dict[str, Any]:
        """Follow a double opt-in link (POST only): pending purposes become granted.

        The link says what it confirms under a MAC (:mod:`privacy.consent.confirm_links`); using it
        stores its hash, so that it confirms once. A link of the former kind (a random
        token stored at sign-up) is looked up instead.
        """
        link = confirm_links.read(self.ctx.crypto, token)
        if link is None and not confirm_links.is_legacy(token):
            raise _unknown()
        with self.database.unit_of_work() as session:
            subject_id, purposes = self._use(session, link, token_hash(token), now)
            states = ConsentStateRepository(session).of_subject(subject_id)
            pending = [states[p] for p in purposes if p in states and states[p].status == "pending"]
            changes.move(session, load_catalogue(self.database), pending, "confirmed", "granted",
                         {"channel": "email", "form": "double-opt-in"}, now)
            return {"subject_id": subject_id, "confirmed": [s.purpose for s in pending]}

    def _use(self, tx: AnyTransaction, link: confirm_links.ConfirmLink | None, digest: str, now: dt.datetime
             ) -> tuple[str, list[str]]:
        """Store the link's use (once: a second use is refused); returns whose it is and the
        purposes it confirms."""
        confirmations = ConfirmationRepository(tx)
        stored = confirmations.get(digest)
        if stored is not None:
            if stored.used_at is not None:
                raise _link_used()
            if stored.expires_at < now:
                raise _expired()
            if not confirmations.use(digest, now):
                raise _link_used()
            return stored.subject_id, stored.purposes
        if link is None:
            raise _unknown()
        subject = SubjectRepository(tx).keys_by_id(link.subject_id)
        if subject is None or subject.wrapped_key is None:  # erased since: unknown
            raise _unknown()
        if link.expires_at < now:
            raise _expired()
        # Two clicks at once: the second one's row is refused here.
        if not confirmations.add_used(digest, link.subject_id, link.purposes, link.issued_at, link.expires_at, now):
            raise _link_used()
        return link.subject_id, link.purposes

    def withdraw_by_link(self, subject_id: str, purpose: str, token: str, now: dt.datetime) -> dict[str, Any]:
        """One-click withdrawal from a mailed link (RFC 8058): as easy as giving."""
        if not self.ctx.crypto.check_link_token(token, unsubscribe.MAC_PART, subject_id, purpose):
            raise NotFound("unknown withdraw link", {"token": ["does not match"]})
        with self.database.unit_of_work() as session:
            state = ConsentStateRepository(session).get(subject_id, purpose)
            if state is None or state.status not in ACTIVE:
                return {"subject_id": subject_id, "purpose": purpose, "status": state.status if state else "none"}
            changes.move(session, load_catalogue(self.database), [state], "withdrawn", "withdrawn",
                         {"channel": "email", "form": "withdraw-link"}, now, ConsentFanout.of(self.ctx))
            return {"subject_id": subject_id, "purpose": purpose, "status": "withdrawn"}

    def unsubscribe_link(self, subject_id: str, purpose: str) -> dict[str, str]:
        """The one-click withdraw link of ``purpose`` for another system's mails to the
        subject, with the two mail headers that carry it (RFC 8058).

        :class:`NotFound` for a subject that is unknown or erased (no mail goes to one);
        :class:`InvalidInput` naming ``purpose`` unless it is a declared purpose given on
        consent: only a consent can be withdrawn. Nothing is stored: the link is a MAC.
        """
        if not queries.is_uuid(subject_id):
            raise NotFound(f"subject '{subject_id[:64]}' not found")
        subject = SubjectRepository(self.database.session).keys_by_id(subject_id)
        if subject is None or subject.wrapped_key is None:
            raise NotFound(f"subject '{subject_id}' not found")
        definition = load_catalogue(self.database).purposes.get(purpose)
        if definition is None:
            raise InvalidInput.field("purpose", f"'{purpose}' is not a declared purpose")
        if not definition.needs_consent:
            raise InvalidInput.field("purpose", f"'{purpose}' is not given on consent (legal basis: "
                                     f"{definition.legal_basis}), so it cannot be withdrawn")
        url = unsubscribe.withdraw_url(self.ctx.crypto, self.ctx.public_url, subject_id, purpose)
        headers = unsubscribe.mail_headers(url)
        return {"subject_id": subject_id, "purpose": purpose, "url": url,
                "list_unsubscribe": headers["List-Unsubscribe"],
                "list_unsubscribe_post": headers["List-Unsubscribe-Post"]}
