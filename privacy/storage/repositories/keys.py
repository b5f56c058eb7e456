"""Master keys and the keyring: ``master_keys`` (the fingerprints of the master keys this
database has known; one is active) and ``keyring`` (service-wide secrets and the keys of
legal holds, each wrapped by the master key).

Every statement on the two tables is here; which master key may start the service, what
is wrapped and when a key is destroyed is :mod:`privacy.crypto`'s (and the legal holds').
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update

from privacy.storage.models import KeyringEntry, MasterKey
from privacy.storage.statements import AnyTransaction, as_transaction

_MK = MasterKey.__table__
_K = KeyringEntry.__table__

MASTER_KEYS = select(_MK.c.key_id, _MK.c.status, _MK.c.created_at, _MK.c.retired_at)
MASTER_KEY = MASTER_KEYS.where(_MK.c.key_id == bindparam("kid"))
INSERT_MASTER_KEY = insert(_MK)
SET_STATUS = update(_MK).where(_MK.c.key_id == bindparam("b_kid")).values(status=bindparam("b_status"))
RETIRE = update(_MK).where(_MK.c.key_id == bindparam("b_kid")).values(
    status=bindparam("b_status"), retired_at=bindparam("b_now"))

ENTRIES = select(_K.c.name, _K.c.wrapped, _K.c.master_key_id, _K.c.public, _K.c.created_at)
ENTRY = ENTRIES.where(_K.c.name == bindparam("name"))
ENTRIES_UNDER = ENTRIES.where(_K.c.master_key_id == bindparam("mk"))
NAMES_LIKE = select(_K.c.name).where(_K.c.name.like(bindparam("pattern")))
INSERT_ENTRY = insert(_K)
REWRAP_ENTRY = update(_K).where(_K.c.name == bindparam("b_name")).values(
    wrapped=bindparam("b_wrapped"), master_key_id=bindparam("b_mk"))
DELETE_ENTRY = delete(_K).where(_K.c.name == bindparam("b_name"))


@dataclass(slots=True)
class MasterKeyRecord:
    """A master key by its fingerprint: ``active``, ``rotating`` (the target of an unfinished
    rotation) or ``retired``."""

    key_id: str
    status: str
    created_at: dt.datetime
    retired_at: dt.datetime | None


@dataclass(slots=True)
class KeyringRecord:
    """A keyring entry: a secret wrapped under a master key (and its public half, if any)."""

    name: str
    wrapped: bytes
    master_key_id: str
    public: str | None
    created_at: dt.datetime


class KeyRepository:
    """The statements of ``master_keys`` and ``keyring``."""

    def __init__(self, tx: AnyTransaction) -> None:
        self.tx = as_transaction(tx)

    # --- master keys ------------------------------------------------------------------

    def master_keys(self) -> list[MasterKeyRecord]:
        return [MasterKeyRecord(*r) for r in self.tx.all(MASTER_KEYS)]

    def master_key(self, key_id: str) -> MasterKeyRecord | None:
        row = self.tx.first(MASTER_KEY, {"kid": key_id})
        return None if row is None else MasterKeyRecord(*row)

    def add_master_key(self, key_id: str, status: str, now: dt.datetime) -> None:
        self.tx.execute(INSERT_MASTER_KEY, [{"key_id": key_id, "status": status, "created_at": now,
                                             "retired_at": None}])

    def set_status(self, key_id: str, status: str) -> None:
        self.tx.execute(SET_STATUS, {"b_kid": key_id, "b_status": status})

    def retire(self, key_id: str, now: dt.datetime) -> None:
        """The master key is ``retired`` from ``now`` on."""
        self.tx.execute(RETIRE, {"b_kid": key_id, "b_status": "retired", "b_now": now})

    # --- keyring ----------------------------------------------------------------------

    def entries(self) -> list[KeyringRecord]:
        return [KeyringRecord(*r) for r in self.tx.all(ENTRIES)]

    def entry(self, name: str) -> KeyringRecord | None:
        row = self.tx.first(ENTRY, {"name": name})
        return None if row is None else KeyringRecord(*row)

    def entries_under(self, master_key_id: str) -> list[KeyringRecord]:
        return [KeyringRecord(*r) for r in self.tx.all(ENTRIES_UNDER, {"mk": master_key_id})]

    def names_starting(self, prefix: str) -> list[str]:
        """The names of the entries that start with ``prefix`` (no LIKE wildcards in it)."""
        return [r.name for r in self.tx.all(NAMES_LIKE, {"pattern": f"{prefix}%"})]

    def add_entry(self, entry: KeyringRecord) -> None:
        """Store a new entry; a duplicate name raises the database's integrity error (on
        PostgreSQL that ends the transaction: run it in a savepoint if the caller goes on)."""
        self.tx.execute(INSERT_ENTRY, [{"name": entry.name, "wrapped": entry.wrapped,
                                        "master_key_id": entry.master_key_id, "public": entry.public,
                                        "created_at": entry.created_at}])

    def rewrap(self, entries: Iterable[tuple[str, bytes, str]]) -> None:
        """Store (name, wrapped secret, master key id) for each entry (master-key rotation)."""
        self.tx.executemany(REWRAP_ENTRY, [{"b_name": name, "b_wrapped": wrapped, "b_mk": mk}
                                           for name, wrapped, mk in entries])

    def delete(self, names: list[str]) -> None:
        """Destroy the entries: whatever was sealed under them cannot be opened any more."""
        self.tx.executemany(DELETE_ENTRY, [{"b_name": name} for name in names])
