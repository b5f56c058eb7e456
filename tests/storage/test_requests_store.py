"""The statements of a data-subject request: the request, its tokens, tasks and package."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from privacy.context import PrivacyContext
from privacy.storage.repositories import requests as statements
from privacy.storage.repositories.requests import (
    PackageRecord,
    RequestRecord,
    RequestRepository,
    TokenRecord,
)
from privacy.storage.repositories.tasks import TaskRecord, TaskRepository
from tests.storage.conftest import NOW

LATER = NOW + dt.timedelta(days=1)
CLOSED = ("completed", "partially_completed", "rejected", "expired")
OPEN = ("pending_verification", "verified", "in_progress")


def new_request(ctx: PrivacyContext, status: str = "in_progress", email_index: bytes = b"anna",
                received_at: dt.datetime = NOW, due_in_days: int = 30, **changes: Any) -> RequestRecord:
    """A request stored in its own unit of work, with a key and sealed details; the record."""
    request = RequestRecord(
        id=str(uuid.uuid4()), type="access", status=status, email_index=email_index, subject_id=None,
        wrapped_key=b"wrapped", master_key_id="mk-1", sealed=b"details", language="en", received_at=received_at,
        due_at=received_at + dt.timedelta(days=due_in_days), extended_until=None, verified_at=None,
        completed_at=None, updated_at=received_at)
    request = dataclasses.replace(request, **changes)
    with ctx.database.unit_of_work() as session:
        RequestRepository(session).add(request)
    return request


def task(request_id: str, system: str, created_at: dt.datetime = NOW) -> TaskRecord:
    return TaskRecord(str(uuid.uuid4()), request_id, system, "access", "pending", 0, None, created_at, None,
                      created_at, created_at)


def stored(ctx: PrivacyContext, request_id: str) -> RequestRecord:
    with ctx.database.unit_of_work() as session:
        request = RequestRepository(session).get(request_id)
    assert request is not None
    return request


def test_a_request_is_read_back_as_it_was_stored_on_a_session_and_on_a_raw_transaction(
        ctx: PrivacyContext) -> None:
    request = new_request(ctx)
    assert stored(ctx, request.id) == request
    with ctx.database.raw_read() as tx:
        assert RequestRepository(tx).get(request.id) == request
        assert RequestRepository(tx).get(str(uuid.uuid4())) is None


def test_a_request_is_read_locked_for_update_on_postgresql_and_plainly_on_sqlite() -> None:
    for stmt in (statements.GET_LOCKED, statements.TOKEN_LOCKED):
        assert "FOR UPDATE" in str(stmt.compile(dialect=postgresql.dialect()))
        assert "FOR UPDATE" not in str(stmt.compile(dialect=sqlite.dialect()))
    assert "FOR UPDATE" not in str(statements.GET.compile(dialect=postgresql.dialect()))


def test_each_change_is_written_and_kept_in_step_on_the_record(ctx: PrivacyContext) -> None:
    request = new_request(ctx, status="pending_verification")
    until = NOW + dt.timedelta(days=60)
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        loaded = requests.get(request.id, lock=True)
        assert loaded is not None
        requests.set_verified(loaded, "subject-1", LATER)
        requests.set_status(loaded, "verified", LATER)
        requests.set_extended(loaded, until, b"details and reason", LATER)
        requests.set_sealed(loaded, b"details, reason and answer")
        requests.set_completed(loaded, LATER)
    assert stored(ctx, request.id) == loaded
    assert (loaded.subject_id, loaded.verified_at, loaded.status, loaded.extended_until, loaded.sealed,
            loaded.completed_at, loaded.updated_at) == (
        "subject-1", LATER, "verified", until, b"details, reason and answer", LATER, LATER)


def test_a_forgotten_request_loses_its_key_details_and_task_results_but_keeps_its_dates(
        ctx: PrivacyContext) -> None:
    kept, touched = new_request(ctx, status="completed"), new_request(ctx, status="completed")
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        for request in (kept, touched):
            TaskRepository(session).add([dataclasses.replace(task(request.id, "privacy-service"),
                                                             result=b"sealed result")])
        requests.forget(kept.id)
        requests.forget(touched.id, LATER)
    for request, updated_at in ((kept, NOW), (touched, LATER)):
        after = stored(ctx, request.id)
        assert (after.wrapped_key, after.master_key_id, after.sealed) == (None, None, None)
        assert (after.status, after.received_at, after.updated_at) == ("completed", NOW, updated_at)
        with ctx.database.unit_of_work() as session:
            assert [t.result for t in TaskRepository(session).of_request(request.id)] == [None]


def test_closed_requests_that_still_have_a_key_are_found_once_closed_long_enough(ctx: PrivacyContext) -> None:
    old = new_request(ctx, status="completed", completed_at=NOW)
    late = new_request(ctx, status="expired", updated_at=LATER)  # never completed: its last change counts
    new_request(ctx, status="completed", completed_at=NOW, wrapped_key=None, master_key_id=None, sealed=None)
    new_request(ctx, status="in_progress")
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        assert requests.ids_keyed_closed_before(CLOSED, NOW) == [old.id]
        assert sorted(requests.ids_keyed_closed_before(CLOSED, LATER)) == sorted([old.id, late.id])


def test_requests_are_found_by_status_and_by_how_long_ago_they_were_received(ctx: PrivacyContext) -> None:
    early = new_request(ctx, status="pending_verification")
    new_request(ctx, status="pending_verification", received_at=LATER)
    running = new_request(ctx, status="in_progress")
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        assert requests.ids_with_status("in_progress") == [running.id]
        assert requests.ids_received_before("pending_verification", NOW) == [early.id]


def test_a_persons_requests_are_those_of_their_address_or_of_their_subject_oldest_first(
        ctx: PrivacyContext) -> None:
    by_subject = new_request(ctx, status="completed", email_index=b"old address", subject_id="s-1",
                             received_at=NOW - dt.timedelta(days=2))
    by_address = new_request(ctx, status="completed", received_at=NOW - dt.timedelta(days=1))
    current = new_request(ctx)
    new_request(ctx, email_index=b"someone else")
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        assert [r.id for r in requests.of_person(b"anna", "s-1")] == [by_subject.id, by_address.id, current.id]
        assert [r.id for r in requests.of_person(b"anna", None)] == [by_address.id, current.id]
        others = requests.ids_keyed_of_person(b"anna", "s-1", CLOSED, except_id=current.id)
    assert sorted(others) == sorted([by_subject.id, by_address.id])


def test_the_queue_is_soonest_deadline_first_and_filters_by_status_type_lateness_and_deadline(
        ctx: PrivacyContext) -> None:
    late = new_request(ctx, due_in_days=1)
    extended = new_request(ctx, due_in_days=1, extended_until=NOW + dt.timedelta(days=50))
    done = new_request(ctx, status="completed", due_in_days=1, type="erasure")
    soon = new_request(ctx, due_in_days=20, type="erasure")
    check = NOW + dt.timedelta(days=10)

    def queue(**filters: Any) -> list[str]:
        with ctx.database.unit_of_work() as session:
            return [r.id for r in RequestRepository(session).queue(check, OPEN, **filters)]

    assert queue() in ([late.id, done.id, soon.id, extended.id], [done.id, late.id, soon.id, extended.id])
    assert queue(limit=1)[0] in (late.id, done.id)
    assert queue(overdue=True) == [late.id]  # a completed request is never late
    assert set(queue(overdue=False)) == {done.id, soon.id, extended.id}
    assert set(queue(type_="erasure")) == {done.id, soon.id}
    assert queue(status="completed") == [done.id]
    assert set(queue(due_before=NOW + dt.timedelta(days=21))) == {late.id, done.id, soon.id}


def test_a_token_is_found_by_its_hash_and_spent_one_use_at_a_time(ctx: PrivacyContext) -> None:
    request = new_request(ctx)
    with ctx.database.unit_of_work() as session:
        RequestRepository(session).add_token(TokenRecord("hash-1", request.id, "download", LATER, 2, None))
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        token = requests.token("hash-1")
        assert token is not None and requests.token("hash-2") is None
        requests.spend(token, NOW)
        assert (token.uses_left, token.used_at) == (1, NOW)
    with ctx.database.unit_of_work() as session:
        assert RequestRepository(session).token("hash-1") == TokenRecord("hash-1", request.id, "download", LATER, 1,
                                                                         NOW)


def test_tasks_are_listed_this_service_first_then_as_planned_and_a_saved_task_keeps_its_outcome(
        ctx: PrivacyContext) -> None:
    request = new_request(ctx)
    with ctx.database.unit_of_work() as session:
        TaskRepository(session).add([task(request.id, "privacy-service"), task(request.id, "crm"),
                                     task(request.id, "billing", LATER)])
    with ctx.database.unit_of_work() as session:
        tasks = TaskRepository(session)
        assert [t.system for t in tasks.of_request(request.id)] == ["privacy-service", "crm", "billing"]
        local = tasks.of_request_system(request.id, "privacy-service")
        assert local is not None and tasks.of_request_system(request.id, "erp") is None
        local.status, local.attempts, local.last_error, local.result = "failed", 5, "internal error", b"sealed"
        TaskRepository(session).save(local, LATER)
    with ctx.database.unit_of_work() as session:
        assert TaskRepository(session).of_request_system(request.id, "privacy-service") == local
    assert local.updated_at == LATER


def test_a_package_expires_with_its_request_forgotten_and_is_marked_deleted_once(ctx: PrivacyContext) -> None:
    request, other = new_request(ctx), new_request(ctx)
    lasting = LATER + dt.timedelta(days=6)
    packages = {r.id: PackageRecord(str(uuid.uuid4()), r.id, "access", f"{r.id}.zip", 100, NOW, lasting, None)
                for r in (request, other)}
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        for package in packages.values():
            requests.add_package(package)
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        assert requests.expired_packages(LATER) == []
        requests.expire_package(request.id, NOW)
        (expired,) = requests.expired_packages(LATER)
        assert expired == dataclasses.replace(packages[request.id], expires_at=NOW)
        assert requests.package_deleted(expired.id, LATER) is True
        assert requests.package_deleted(str(uuid.uuid4()), LATER) is False
        assert requests.expired_packages(LATER) == []
        assert requests.package_of(other.id) == packages[other.id]
        package = requests.package_of(request.id)
    assert package is not None and package.deleted_at == LATER


def test_request_keys_are_walked_in_id_order_and_rewrapped(ctx: PrivacyContext) -> None:
    first, second = sorted((new_request(ctx), new_request(ctx)), key=lambda r: r.id)
    with ctx.database.unit_of_work() as session:
        requests = RequestRepository(session)
        assert [r.id for r in requests.keys_after("", 1)] == [first.id]
        assert [r.id for r in requests.keys_after(first.id, 10)] == [second.id]
        requests.rewrap([(first.id, b"rewrapped", "mk-2")])
        assert [(r.id, r.wrapped_key) for r in requests.keys_under("mk-2")] == [(first.id, b"rewrapped")]
        assert [r.id for r in requests.keys_under("mk-1")] == [second.id]
