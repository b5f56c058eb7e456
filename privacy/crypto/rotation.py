"""Master-key rotation: every wrapped data key and keyring secret moves to a new master key."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from privacy.crypto.keys import Crypto
from privacy.ledger import append_audit
from privacy.storage.models import DataRequest, KeyringEntry, MasterKey, Subject


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
    if session.get(MasterKey, new.master_key_id) is None:
        session.add(MasterKey(key_id=new.master_key_id, status="rotating", created_at=now))
        session.commit()
    moved = 0
    for model, purpose in ((Subject, "dek"), (DataRequest, "rdek")):
        moved += _rewrap_keys(session, model, purpose, old, new, batch_size, progress)
    for entry in session.scalars(select(KeyringEntry).where(KeyringEntry.master_key_id == old.master_key_id)):
        entry.wrapped = new.wrap_secret(entry.name, old.unwrap_secret(entry.name, entry.wrapped))
        entry.master_key_id = new.master_key_id
    session.execute(
        update(MasterKey).where(MasterKey.key_id == old.master_key_id).values(status="retired", retired_at=now)
    )
    session.execute(update(MasterKey).where(MasterKey.key_id == new.master_key_id).values(status="active"))
    append_audit(session, actor, "key.rotate_master", now, target=new.master_key_id,
                 details={"from": old.master_key_id, "rewrapped": moved})
    session.commit()
    return moved




def _rewrap_keys(session: Session, model: Any, purpose: str, old: Crypto, new: Crypto, batch_size: int,
                 progress: Callable[[int], None] | None) -> int:
    """Re-wrap the data keys of one table (subjects or requests), walking its primary key
    so that no index on master_key_id is needed, then the rows created behind the walk."""
    moved, last = 0, ""
    while True:
        rows = list(session.scalars(select(model).where(model.id > last).order_by(model.id).limit(batch_size)))
        if not rows:
            break
        batch = [r for r in rows if r.master_key_id == old.master_key_id]
        for row in batch:
            _rewrap(row, purpose, old, new)
        session.commit()
        last = rows[-1].id
        moved += len(batch)
        if progress and batch:
            progress(len(batch))
    late = list(session.scalars(select(model).where(model.master_key_id == old.master_key_id)))
    for row in late:
        _rewrap(row, purpose, old, new)
    return moved + len(late)


def _rewrap(row: Any, purpose: str, old: Crypto, new: Crypto) -> None:
    aad = f"{purpose}|{row.id}".encode()
    row.wrapped_key = old.rewrap(new, row.wrapped_key, aad)
    row.master_key_id = new.master_key_id
