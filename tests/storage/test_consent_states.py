"""The consent-state repository: one row per subject and purpose, on either write path."""
from __future__ import annotations

import datetime as dt

from privacy.context import PrivacyContext
from privacy.storage.repositories.consent_states import ConsentStateRecord, ConsentStateRepository
from tests.storage.conftest import NOW, new_subject

LATER = NOW + dt.timedelta(days=1)


def _state(sid: str, purpose: str, status: str, seq: int, granted_at: dt.datetime | None = NOW) -> ConsentStateRecord:
    return ConsentStateRecord(sid, purpose, status, "v1", NOW, granted_at, seq)


def test_states_inserted_raw_and_updated_in_a_unit_of_work_read_back_in_purpose_order(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.raw_write() as tx:
        ConsentStateRepository(tx).insert([_state(sid, "profiling", "granted", 1),
                                           _state(sid, "marketing_email", "pending", 2, None)])
    with ctx.database.unit_of_work() as session:
        states = ConsentStateRepository(session)
        moved = states.get(sid, "marketing_email")
        assert moved is not None
        moved.status, moved.recorded_at, moved.granted_at, moved.event_seq = "granted", LATER, LATER, 3
        states.update([moved])
    with ctx.database.raw_read() as reader:
        found = ConsentStateRepository(reader).of_subject(sid)
    assert list(found) == ["marketing_email", "profiling"]
    assert found["marketing_email"] == ConsentStateRecord(sid, "marketing_email", "granted", "v1", LATER, LATER, 3)
    assert found["profiling"] == _state(sid, "profiling", "granted", 1)


def test_the_snapshot_moves_when_a_state_does(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        ConsentStateRepository(session).insert([_state(sid, "profiling", "granted", 1)])
    with ctx.database.raw_read() as reader:
        before = ConsentStateRepository(reader).snapshot(sid)
    with ctx.database.unit_of_work() as session:
        ConsentStateRepository(session).update([_state(sid, "profiling", "withdrawn", 2, None)])
    with ctx.database.raw_read() as reader:
        after = ConsentStateRepository(reader).snapshot(sid)
    assert before == {("profiling", 1)} and after == {("profiling", 2)}


def test_only_consents_still_granted_before_the_cutoff_are_due_to_expire(ctx: PrivacyContext) -> None:
    old, fresh, gone = new_subject(ctx), new_subject(ctx, "b@example.se"), new_subject(ctx, "c@example.se")
    with ctx.database.unit_of_work() as session:
        ConsentStateRepository(session).insert([
            _state(old, "profiling", "granted", 1), _state(fresh, "profiling", "granted", 2, LATER),
            _state(gone, "profiling", "withdrawn", 3), _state(old, "loyalty_club", "granted", 4)])
    with ctx.database.unit_of_work() as session:
        due = ConsentStateRepository(session).granted_before("profiling", NOW + dt.timedelta(hours=1), 10)
    assert [(s.subject_id, s.purpose) for s in due] == [(old, "profiling")]


def test_forgetting_a_subject_deletes_its_states(ctx: PrivacyContext) -> None:
    sid, other = new_subject(ctx), new_subject(ctx, "b@example.se")
    with ctx.database.unit_of_work() as session:
        states = ConsentStateRepository(session)
        states.insert([_state(sid, "profiling", "granted", 1), _state(other, "profiling", "granted", 2)])
        states.forget(sid)
    with ctx.database.raw_read() as reader:
        states = ConsentStateRepository(reader)
        assert states.of_subject(sid) == {} and list(states.of_subject(other)) == ["profiling"]


def test_the_check_finds_granted_unrestricted_subjects_by_blind_index_or_id(ctx: PrivacyContext) -> None:
    anna, erik = new_subject(ctx), new_subject(ctx, "erik@example.se")
    with ctx.database.unit_of_work() as session:
        ConsentStateRepository(session).insert([_state(anna, "profiling", "granted", 1, NOW),
                                                _state(erik, "profiling", "granted", 2, NOW - dt.timedelta(days=9))])
    index = ctx.crypto.blind_index
    with ctx.database.unit_of_work() as session:
        states = ConsentStateRepository(session)
        keys = [index("anna@example.se"), index("erik@example.se"), index("nobody@example.se")]
        assert states.allowed(True, keys, "profiling", None) == set(keys[:2])
        assert states.allowed(False, [anna, erik], "profiling", NOW - dt.timedelta(days=1)) == {anna}
        assert states.allowed(False, [anna], "loyalty_club", None) == set()
