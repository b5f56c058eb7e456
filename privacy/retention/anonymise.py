"""What an anonymisation keeps of a subject: aggregates that identify nobody.

Birth year (from ``birth_date``), the first three characters of ``postal_code``, the
country, each purpose held with the days it was held, and the rule that applied. Only
those three fields are decrypted; the row has no subject id, no e-mail, no name.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from privacy.crypto.keys import Crypto
from privacy.storage.repositories.retention import StateRow
from privacy.storage.repositories.subjects import SubjectRecord

AGGREGATED_FIELDS = ("birth_date", "postal_code", "country")


def _days_held(state: StateRow, subject: SubjectRecord, as_of: dt.datetime) -> int:
    start = state.granted_at or subject.created_at
    end = as_of if state.status in ("granted", "pending") else state.recorded_at
    return max(0, (end - start).days)


def aggregates(crypto: Crypto, subject: SubjectRecord, fields: Mapping[str, bytes], states: Mapping[str, StateRow],
               as_of: dt.datetime, dek: bytes | None = None) -> dict[str, Any]:
    """The anonymised record's values for ``subject`` (decrypts only :data:`AGGREGATED_FIELDS`;
    ``dek``: the subject's data key, if the caller has it unwrapped already)."""
    values: dict[str, str] = {}
    if any(name in fields for name in AGGREGATED_FIELDS):
        dek = dek if dek is not None else crypto.data_key(subject)
        values = {name: crypto.decrypt_field(dek, subject.id, name, fields[name])
                  for name in AGGREGATED_FIELDS if name in fields}
    birth = values.get("birth_date")
    return {"birth_year": int(birth[:4]) if birth and birth[:4].isdigit() else None,
            "postal_prefix": (values.get("postal_code") or "")[:3] or None,
            "country": (values.get("country") or "")[:2] or None,
            "purposes": [{"purpose": code, "days_held": _days_held(s, subject, as_of)}
                         for code, s in sorted(states.items())]}
