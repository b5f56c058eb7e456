"""The ledger's statements: a chain's head is locked, moved, and starts at genesis; a
subject's consent events go to its shard, whose head alone is locked."""
from __future__ import annotations

import hashlib

from privacy.context import PrivacyContext
from privacy.ledger import append_audit, append_consent_events, verify_chain
from privacy.storage.repositories.ledger import (
    AUDIT_CHAIN,
    CONSENT_CHAIN,
    GENESIS,
    SHARDS,
    LedgerRepository,
    shard_head,
    shard_of,
)
from tests.storage.conftest import NOW

EVENT = {"subject_id": "s-1", "purpose": "profiling", "action": "granted", "status": "granted",
         "notice_version": "v1", "text_hash": None, "source": '{"form": "test"}', "recorded_at": NOW}


def test_a_chain_without_a_head_starts_at_genesis(ctx: PrivacyContext) -> None:
    with ctx.database.unit_of_work() as session:
        store = LedgerRepository(session)
        assert store.head(AUDIT_CHAIN) == (0, GENESIS)
        assert store.lock_head(AUDIT_CHAIN) == (0, GENESIS)
    with ctx.database.raw_read() as reader:
        assert LedgerRepository(reader).head(AUDIT_CHAIN) == (0, GENESIS)  # the head is now stored


def test_an_empty_shards_head_is_64_before_its_first_seq(ctx: PrivacyContext) -> None:
    with ctx.database.unit_of_work() as session:
        assert LedgerRepository(session).lock_shard(5) == (5 + 1 - SHARDS, GENESIS)


def test_a_subject_always_has_the_same_shard_and_subjects_spread_over_all() -> None:
    assert shard_of("s-1") == shard_of("s-1") == int.from_bytes(hashlib.sha256(b"s-1").digest()[:8], "big") % 64
    assert {shard_of(f"subject-{n}") for n in range(2000)} == set(range(SHARDS))


def test_appends_on_either_path_make_one_shard_chain_whose_head_is_its_last_entry(ctx: PrivacyContext) -> None:
    shard = shard_of("s-1")
    with ctx.database.raw_write() as tx:
        first = append_consent_events(tx, [EVENT, {**EVENT, "purpose": "sms"}])
    with ctx.database.unit_of_work() as session:
        (last,) = append_consent_events(session, [{**EVENT, "action": "withdrawn", "status": "withdrawn"}])
    seqs = [shard + 1, shard + 1 + SHARDS, shard + 1 + 2 * SHARDS]
    assert [r["seq"] for r in (*first, last)] == seqs and last["prev_hash"] == first[-1]["hash"]
    assert first[0]["prev_hash"] == GENESIS
    with ctx.database.unit_of_work() as session:
        store = LedgerRepository(session)
        assert store.head(shard_head(shard)) == (seqs[-1], last["hash"])
        assert store.head(CONSENT_CHAIN) == (0, GENESIS)  # the legacy chain takes no more entries
        assert [e.seq for e in store.events_of("s-1")] == seqs
        assert [e.seq for e in store.stream_events_of("s-1")] == seqs
        assert store.sources_of("s-1") == ['{"form": "test"}']
        assert verify_chain(session, CONSENT_CHAIN).ok


def test_one_append_of_several_subjects_chains_each_in_its_shard_and_keeps_their_order(
        ctx: PrivacyContext) -> None:
    subjects = [f"s-{n}" for n in range(10)]
    events = [{**EVENT, "subject_id": s} for s in subjects] + [{**EVENT, "subject_id": "s-0", "purpose": "sms"}]
    with ctx.database.unit_of_work() as session:
        rows = append_consent_events(session, events)
    assert [r["subject_id"] for r in rows] == [e["subject_id"] for e in events]
    assert all((r["seq"] - 1) % SHARDS == shard_of(r["subject_id"]) for r in rows)
    assert rows[-1]["prev_hash"] == rows[0]["hash"] and len({r["seq"] for r in rows}) == len(rows)
    with ctx.database.unit_of_work() as session:
        report = verify_chain(session, CONSENT_CHAIN)
        assert report.ok and report.entries == len(events)


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
