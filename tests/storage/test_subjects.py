"""The subject repository: subjects, their sealed fields, suppressions and held fields."""
from __future__ import annotations

import datetime as dt

from privacy.context import PrivacyContext
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.outbox import OutboxRepository, QueuedMail
from privacy.storage.repositories.subjects import HeldValue, SubjectRepository
from tests.storage.conftest import NOW, new_subject


def test_a_subject_stored_on_the_fast_path_reads_the_same_in_a_unit_of_work(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.raw_read() as reader:
        keys = SubjectRepository(reader).keys_by_id(sid)
    with ctx.database.unit_of_work() as session:
        subject = SubjectRepository(session).get(sid)
    assert subject is not None
    assert (subject.id, subject.email_index, subject.wrapped_key) == (keys.id, keys.email_index, keys.wrapped_key)
    assert subject.email_index == ctx.crypto.blind_index("anna@example.se")
    assert subject.created_at == subject.last_activity_at == NOW and subject.restricted is False


def test_fields_are_added_or_overwritten_by_name_whichever_path_writes_them(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.raw_write() as tx:
        for rows in SubjectRepository.prepare_fields(sid, {"first_name": b"A1", "country": b"C1"}, set(), NOW,
                                                     tx.dialect):
            tx.run(rows)
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        stored = subjects.field_names(sid)
        subjects.save_fields(sid, {"first_name": b"A2", "last_name": b"L1"}, stored, NOW)
    with ctx.database.raw_read() as reader:
        assert SubjectRepository(reader).fields(sid) == {"country": b"C1", "first_name": b"A2", "last_name": b"L1"}


def test_a_shredded_subject_keeps_its_row_but_not_its_key(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        SubjectRepository(session).shred(sid, NOW)
    with ctx.database.unit_of_work() as session:
        subject = SubjectRepository(session).get(sid)
    assert subject is not None and subject.wrapped_key is None and subject.master_key_id is None


def test_an_erased_subject_leaves_only_a_suppression_of_its_blind_index(ctx: PrivacyContext) -> None:
    sid, other = new_subject(ctx), new_subject(ctx, "erik@example.se")
    index = ctx.crypto.blind_index("anna@example.se")
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        subjects.save_fields(sid, {"first_name": b"A"}, set(), NOW)
        OutboxRepository(session).add([QueuedMail("m-1", sid, None, b"sealed", NOW)])
        subjects.suppress(index, sid, "erasure", None, NOW)
        ConsentStateRepository(session).forget(sid)
        subjects.erase(sid, NOW)
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        assert subjects.get(sid) is None and subjects.fields(sid) == {}
        found = subjects.keys_or_suppression(index)
        assert found.suppressed and found.id == sid
        assert subjects.index_taken(index, other)  # a rectification cannot take the address back
        assert OutboxRepository(session).lease(NOW, NOW, 10) == []  # its queued mail went with it


def test_an_index_is_free_for_the_subject_that_holds_it_and_taken_for_another(ctx: PrivacyContext) -> None:
    sid, other = new_subject(ctx), new_subject(ctx, "erik@example.se")
    index = ctx.crypto.blind_index("anna@example.se")
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        assert not subjects.index_taken(index, sid)
        assert subjects.index_taken(index, other)
        subjects.updated(other, NOW, email_index=ctx.crypto.blind_index("erik.new@example.se"))
        assert subjects.by_email_index(ctx.crypto.blind_index("erik.new@example.se")).id == other


def test_held_fields_are_released_when_their_hold_ends(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    ends = NOW + dt.timedelta(days=1)
    with ctx.database.unit_of_work() as session:
        SubjectRepository(session).hold(sid, [HeldValue("first_name", "bookkeeping", ends, "hold|k|2026-11", b"x"),
                                              HeldValue("country", "bookkeeping", ends, "hold|k|2026-12", b"y")], NOW)
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        assert subjects.release_held(NOW) == 0
        subjects.drop_held_under(["hold|k|2026-12"])
        assert subjects.release_held(ends) == 1  # the other went with its key


def test_a_restriction_is_stored_and_lifted(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.unit_of_work() as session:
        SubjectRepository(session).set_restricted(sid, True, NOW)
    with ctx.database.unit_of_work() as session:
        subjects = SubjectRepository(session)
        assert subjects.get(sid).restricted is True
        subjects.set_restricted(sid, False, NOW)
    with ctx.database.raw_read() as reader:
        assert SubjectRepository(reader).get(sid).restricted is False
