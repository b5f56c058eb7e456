"""Stored answers to requests sent with an ``Idempotency-Key``: ``idempotency_keys``."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from privacy.storage.models import IdempotencyRecord
from privacy.storage.statements import AnyTransaction, Prepared, as_transaction, prepare

_IK = IdempotencyRecord.__table__

FIND = select(_IK.c.request_hash, _IK.c.response).where(
    _IK.c.api_key_id == bindparam("kid"), _IK.c.key == bindparam("key"))
INSERT = insert(_IK)
PURGE = delete(_IK).where(_IK.c.created_at < bindparam("b_before"))
CREATED = 201
"""The status stored with an answer: only a recording's answer (201 Created) is stored."""


@dataclass(slots=True)
class StoredAnswer:
    """The answer given to the first request with a key, and that request's fingerprint."""

    request_hash: str
    body: dict[str, Any]


class IdempotencyRepository:
    """The statements of ``idempotency_keys``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    @staticmethod
    def prepare(api_key_id: str, key: str, request_hash: str, body: dict[str, Any], now: dt.datetime,
                dialect: Any) -> Prepared:
        """The answer to store for a key, converted (and encoded) before the write lock."""
        return prepare(INSERT, [{"api_key_id": api_key_id, "key": key, "request_hash": request_hash,
                                 "status_code": CREATED, "response": json.dumps(body), "created_at": now}], dialect)

    def find(self, api_key_id: str, key: str) -> StoredAnswer | None:
        row = self.tx.first(FIND, {"kid": api_key_id, "key": key})
        return None if row is None else StoredAnswer(row.request_hash, json.loads(row.response))

    def purge(self, before: dt.datetime) -> int:
        """Forget the answers stored before ``before``; returns how many."""
        return int(self.tx.execute(PURGE, {"b_before": before}).rowcount or 0)
