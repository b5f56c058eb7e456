"""Moving consent states along outside a recording: a confirmation, a withdrawal, an
expiry, an objection or an erasure. Each change is a ledger event per state and the
states' new values, in the caller's transaction."""
from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from privacy.consent.plan import ACTIVE
from privacy.ledger import append_consent_events
from privacy.policy.catalogue import Catalogue
from privacy.storage.repositories.consent_states import ConsentStateRecord, ConsentStateRepository
from privacy.storage.statements import AnyTransaction

if TYPE_CHECKING:
    from privacy.tasks.planning import ConsentFanout


def move(tx: AnyTransaction, catalogue: Catalogue, states: list[ConsentStateRecord], action: str, status: str,
         source: dict[str, Any], now: dt.datetime, fanout: ConsentFanout | None = None) -> None:
    """Append one ledger event per state and move the states to ``status``, in one go.
    With ``fanout``, a withdrawal or expiry plans a task for every connected system that
    takes consent, in the same transaction (a request's own tasks cover its changes)."""
    if not states:
        return
    rows = append_consent_events(tx, [
        {"subject_id": s.subject_id, "purpose": s.purpose, "action": action, "status": status,
         "notice_version": s.notice_version, "recorded_at": now, "source": json.dumps(source, sort_keys=True),
         "text_hash": catalogue.notice_hash(s.purpose, s.notice_version) if s.notice_version else None}
        for s in states])
    for state, row in zip(states, rows, strict=True):
        state.status, state.recorded_at, state.event_seq = status, now, row["seq"]
        if status == "granted":
            state.granted_at = now
    ConsentStateRepository(tx).update(states)
    if fanout is not None:
        by_subject: dict[str, dict[str, str]] = {}
        for state in states:
            by_subject.setdefault(state.subject_id, {})[state.purpose] = status
        for subject_id, purposes in by_subject.items():
            fanout.changed(tx, subject_id, purposes, now)


def withdraw(tx: AnyTransaction, catalogue: Catalogue, subject_id: str, purposes: list[str] | None,
             source: dict[str, Any], now: dt.datetime, fanout: ConsentFanout | None = None) -> list[str]:
    """Withdraw the subject's active consents for ``purposes`` (all with None) in ``tx``, as
    objections and erasures do; returns the purposes withdrawn, in order."""
    states = [s for code, s in ConsentStateRepository(tx).of_subject(subject_id).items()
              if s.status in ACTIVE and (purposes is None or code in purposes)]
    move(tx, catalogue, states, "withdrawn", "withdrawn", source, now, fanout)
    return [s.purpose for s in states]
