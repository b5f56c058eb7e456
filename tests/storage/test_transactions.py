"""A repository runs the same statements on a raw transaction and on a unit of work."""
from __future__ import annotations

from privacy.context import PrivacyContext
from privacy.ids import new_id
from privacy.storage.repositories.consent_states import ConsentStateRepository
from privacy.storage.repositories.subjects import NewSubject, SubjectRepository
from tests.storage.conftest import NOW, new_subject


def test_rows_prepared_for_the_fast_path_run_the_same_in_a_unit_of_work(ctx: PrivacyContext) -> None:
    crypto, sid = ctx.crypto, new_id()
    _, wrapped = crypto.new_data_key(sid)
    with ctx.database.unit_of_work() as session:
        dialect = session.get_bind().dialect
        subjects = SubjectRepository(session)
        subjects.tx.run(SubjectRepository.prepare_new(
            NewSubject(sid, crypto.blind_index("anna@example.se"), wrapped, crypto.master_key_id), NOW, dialect))
        for rows in SubjectRepository.prepare_fields(sid, {"a": b"1", "b": b"2"}, set(), NOW, dialect):
            subjects.tx.run(rows)
    with ctx.database.raw_read() as reader:
        subjects = SubjectRepository(reader)
        subject = subjects.get(sid)
        assert subject is not None and subject.wrapped_key == wrapped and subject.created_at == NOW
        assert subjects.fields(sid) == {"a": b"1", "b": b"2"}


def test_no_rows_run_no_statement_on_either_path(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    with ctx.database.raw_write() as tx:
        ConsentStateRepository(tx).insert([])
        SubjectRepository(tx).save_fields(sid, {}, set(), NOW)
    with ctx.database.unit_of_work() as session:
        ConsentStateRepository(session).insert([])
        SubjectRepository(session).save_fields(sid, {}, set(), NOW)
        assert ConsentStateRepository(session).of_subject(sid) == {}


def test_a_repository_on_a_session_keeps_working_after_a_commit(ctx: PrivacyContext) -> None:
    sid = new_subject(ctx)
    session = ctx.database.session()
    subjects = SubjectRepository(session)
    subjects.set_restricted(sid, True, NOW)
    session.commit()
    subjects.set_restricted(sid, False, NOW)  # on the session's next transaction
    session.commit()
    with ctx.database.raw_read() as reader:
        assert SubjectRepository(reader).get(sid).restricted is False
