"""The statements of the master keys and the keyring."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from privacy.context import PrivacyContext
from privacy.crypto.keys import Crypto
from privacy.storage.repositories.keys import KeyRepository, KeyringRecord, MasterKeyRecord
from tests.storage.conftest import NOW


def test_the_started_service_has_one_active_master_key_and_its_two_keyring_secrets(ctx: PrivacyContext) -> None:
    with ctx.database.raw_read() as tx:
        keys = KeyRepository(tx)
        (master,) = keys.master_keys()
        names = {e.name for e in keys.entries()}
    assert (master.key_id, master.status, master.retired_at) == (ctx.crypto.master_key_id, "active", None)
    assert names == {Crypto.INDEX_ROOT, Crypto.SIGNING_KEY}


def test_a_rotation_target_is_added_then_activated_while_the_old_key_is_retired(ctx: PrivacyContext) -> None:
    old = ctx.crypto.master_key_id
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        keys.add_master_key("mk-new", "rotating", NOW)
        assert keys.master_key("mk-new") == MasterKeyRecord("mk-new", "rotating", NOW, None)
        keys.retire(old, NOW)
        keys.set_status("mk-new", "active")
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        assert keys.master_key("mk-new") == MasterKeyRecord("mk-new", "active", NOW, None)
        retired = keys.master_key(old)
        assert keys.master_key("mk-unknown") is None
    assert retired is not None and (retired.status, retired.retired_at) == ("retired", NOW)


def test_a_keyring_name_is_taken_once_and_a_second_entry_is_refused_in_its_savepoint(ctx: PrivacyContext) -> None:
    entry = KeyringRecord("hold|tax|2027-01", b"wrapped", ctx.crypto.master_key_id, None, NOW)
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        keys.add_entry(entry)
        with pytest.raises(IntegrityError), session.begin_nested():
            keys.add_entry(KeyringRecord(entry.name, b"other", entry.master_key_id, None, NOW))
        assert keys.entry(entry.name) == entry  # the transaction goes on, the first entry stands


def test_entries_are_rewrapped_under_a_new_master_key(ctx: PrivacyContext) -> None:
    old = ctx.crypto.master_key_id
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        keys.rewrap([(Crypto.INDEX_ROOT, b"rewrapped", "mk-new")])
        assert [e.name for e in keys.entries_under(old)] == [Crypto.SIGNING_KEY]
        (moved,) = keys.entries_under("mk-new")
    assert (moved.name, moved.wrapped) == (Crypto.INDEX_ROOT, b"rewrapped")


def test_entries_are_found_by_the_start_of_their_name_and_destroyed(ctx: PrivacyContext) -> None:
    mk = ctx.crypto.master_key_id
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        for name in ("hold|tax|2026-10", "hold|tax|2027-01", "holdout"):
            keys.add_entry(KeyringRecord(name, b"wrapped", mk, None, NOW))
        assert sorted(keys.names_starting("hold|")) == ["hold|tax|2026-10", "hold|tax|2027-01"]
        keys.delete(["hold|tax|2026-10", "holdout"])
    with ctx.database.unit_of_work() as session:
        keys = KeyRepository(session)
        assert keys.names_starting("hold") == ["hold|tax|2027-01"]
        assert keys.entry("hold|tax|2026-10") is None
