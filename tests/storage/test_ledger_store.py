"""The ledger's statements: a chain's head is locked, moved, and starts at genesis."""
from __future__ import annotations

from privacy.context import PrivacyContext
from privacy.ledger import append_audit, append_consent_events, verify_chain
from privacy.storage.repositories.ledger import AUDIT_CHAIN, CONSENT_CHAIN, GENESIS, LedgerRepository
from tests.storage.conftest import NOW

EVENT = {"subject_id": "s-1", "purpose": "profiling", "action": "granted", "status": "granted",
         "notice_version": "v1", "text_hash": None, "source": '{"form": "test"}', "recorded_at": NOW}


def test_a_chain_without_a_head_starts_at_genesis(ctx: PrivacyContext) -> None:
    with ctx.database.unit_of_work() as session:
        store = LedgerRepository(session)
        assert store.head(CONSENT_CHAIN) == (0, GENESIS)
        assert store.lock_head(CONSENT_CHAIN) == (0, GENESIS)
    with ctx.database.raw_read() as reader:
        assert LedgerRepository(reader).head(CONSENT_CHAIN) == (0, GENESIS)  # the head is now stored


def test_appends_on_either_path_make_one_chain_whose_head_is_its_last_entry(ctx: PrivacyContext) -> None:
    with ctx.database.raw_write() as tx:
        first = append_consent_events(tx, [EVENT, {**EVENT, "purpose": "sms"}])
    with ctx.database.unit_of_work() as session:
        (last,) = append_consent_events(session, [{**EVENT, "action": "withdrawn", "status": "withdrawn"}])
    assert [r["seq"] for r in first] == [1, 2] and last["seq"] == 3 and last["prev_hash"] == first[-1]["hash"]
    with ctx.database.unit_of_work() as session:
        store = LedgerRepository(session)
        assert store.head(CONSENT_CHAIN) == (3, last["hash"])
        assert [e.seq for e in store.events_of("s-1")] == [1, 2, 3]
        assert [e.seq for e in store.stream_events_of("s-1")] == [1, 2, 3]
        assert store.sources_of("s-1") == ['{"form": "test"}']
        assert verify_chain(session, CONSENT_CHAIN).ok


def test_audit_entries_are_found_by_their_target(ctx: PrivacyContext) -> None:
    with ctx.database.unit_of_work() as session:
        append_audit(session, "officer", "request.received", NOW, target="r-1")
        append_audit(session, "officer", "subject.lookup", NOW, target="s-9", details={"by": "email"})
        append_audit(session, "system", "request.completed", NOW, target="r-1")
    with ctx.database.unit_of_work() as session:
        store = LedgerRepository(session)
        assert [a.action for a in store.audit_of("r-1")] == ["request.received", "request.completed"]
        assert [a["seq"] for a in store.entries_after(AUDIT_CHAIN, 1, 10)] == [2, 3]
        assert verify_chain(session, AUDIT_CHAIN).ok
