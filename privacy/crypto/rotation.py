"""Master-key rotation: every wrapped data key and keyring secret moves to a new master key."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy.orm import Session

from privacy.crypto.keys import Crypto
from privacy.ledger import append_audit
from privacy.storage.repositories.keys import KeyRepository
from privacy.storage.repositories.requests import RequestRepository
from privacy.storage.repositories.subjects import SubjectRepository
from privacy.storage.repositories.tasks import TaskRepository


def rotate_master(
    session: Session,
    old: Crypto,
    new: Crypto,
    now: dt.datetime,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    actor: str = "cli",
) -> int:
    """Re-wrap every data key and keyring secret from ``old`` to ``new``, batch by batch.

    Field ciphertexts are untouched. Each batch commits, so an interrupted rotation resumes
    where it stopped when run again with the same two keys. At the end the old key is
    marked retired (an audit entry says so) and :meth:`Crypto.bootstrap` refuses it from then on.
    """
    if old.master_key_id == new.master_key_id:
        raise ValueError("the new master key is the current one")
    master_keys = KeyRepository(session)
    if master_keys.master_key(new.master_key_id) is None:
        master_keys.add_master_key(new.master_key_id, "rotating", now)
        session.commit()
    moved = 0
    for table, purpose in ((SubjectRepository(session), "dek"), (RequestRepository(session), "rdek"),
                           (TaskRepository(session), "tdek")):
        moved += _rewrap_keys(session, table, purpose, old, new, batch_size, progress)
    master_keys.rewrap((e.name, new.wrap_secret(e.name, old.unwrap_secret(e.name, e.wrapped)), new.master_key_id)
                       for e in master_keys.entries_under(old.master_key_id))
    master_keys.retire(old.master_key_id, now)
    master_keys.set_status(new.master_key_id, "active")
    append_audit(session, actor, "key.rotate_master", now, target=new.master_key_id,
                 details={"from": old.master_key_id, "rewrapped": moved})
    session.commit()
    return moved


class _KeyTable(Protocol):
    """A table whose rows hold a key wrapped under the master key (subjects, requests, tasks)."""

    def keys_after(self, after: str, limit: int) -> list[Any]: ...

    def keys_under(self, master_key_id: str) -> list[Any]: ...

    def rewrap(self, keys: Iterable[tuple[str, bytes, str]]) -> None: ...


def _rewrap_keys(session: Session, table: _KeyTable, purpose: str, old: Crypto, new: Crypto, batch_size: int,
                 progress: Callable[[int], None] | None) -> int:
    """Re-wrap the keys of one table (subjects or requests), walking its primary key so that
    no index on master_key_id is needed, then the rows created behind the walk."""

    def store(rows: list[Any]) -> None:
        table.rewrap((r.id, old.rewrap(new, r.wrapped_key, f"{purpose}|{r.id}".encode()), new.master_key_id)
                     for r in rows)

    moved, last = 0, ""
    while True:
        rows = table.keys_after(last, batch_size)
        if not rows:
            break
        batch = [r for r in rows if r.master_key_id == old.master_key_id]
        store(batch)
        session.commit()
        last = rows[-1].id
        moved += len(batch)
        if progress and batch:
            progress(len(batch))
    late = table.keys_under(old.master_key_id)
    store(late)
    return moved + len(late)
