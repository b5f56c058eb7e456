"""The raw write path stores values exactly as SQLAlchemy Core would, on both databases."""
from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from api.db import db
from api.services import current
from privacy.storage.models import Receipt, Subject

RECEIPTS = Receipt.__table__
AT = dt.datetime(2026, 1, 31, 23, 0, 0, tzinfo=dt.UTC)  # no microseconds: the case a plain adapter gets wrong


def test_a_row_written_raw_reads_back_equal_through_the_orm(app: Flask) -> None:
    with app.app_context():
        with current().database.raw_write() as tx:
            tx.execute(insert(RECEIPTS), {"id": "r-raw", "subject_id": "s", "jws": "x.y.z", "created_at": AT})
        with db.engine.begin() as conn:
            conn.execute(insert(RECEIPTS), {"id": "r-core", "subject_id": "s", "jws": "x.y.z", "created_at": AT})
        rows = {r.id: r.created_at for r in db.session.scalars(select(Receipt))}
        assert rows == {"r-raw": AT, "r-core": AT}
        stored = dict(db.session.execute(text("SELECT id, CAST(created_at AS TEXT) FROM receipts")).all())
        assert stored["r-raw"] == stored["r-core"]  # the very same text (SQLite) or value (PostgreSQL)


def test_a_raw_read_converts_each_column_by_its_type(app: Flask) -> None:
    with app.app_context():
        with current().database.raw_write() as tx:
            tx.execute(insert(RECEIPTS), {"id": "r1", "subject_id": "s", "jws": "x.y.z", "created_at": AT})
        with current().database.raw_read() as reader:
            row = reader.first(select(RECEIPTS.c.id, RECEIPTS.c.created_at).where(RECEIPTS.c.id == "r1"))
            missing = reader.first(select(Subject.__table__.c.id).where(Subject.__table__.c.id == "nobody"))
        assert row.id == "r1" and row.created_at == AT and row.created_at.tzinfo is not None
        assert missing is None


def test_a_failed_raw_write_leaves_nothing_behind(app: Flask) -> None:
    with app.app_context():
        try:
            with current().database.raw_write() as tx:
                tx.execute(insert(RECEIPTS), {"id": "r2", "subject_id": "s", "jws": "x", "created_at": AT})
                raise RuntimeError("the request failed half way")
        except RuntimeError:
            pass
        assert db.session.get(Receipt, "r2") is None


def test_a_failed_write_on_a_shared_connection_leaves_it_ready_for_the_retry(app: Flask) -> None:
    with app.app_context():
        with current().database.raw_connection() as conn:
            try:
                with current().database.raw_write(conn) as tx:
                    tx.execute(insert(RECEIPTS), {"id": "r3", "subject_id": "s", "jws": "x", "created_at": AT})
                    tx.execute(insert(RECEIPTS), {"id": "r3", "subject_id": "s", "jws": "x", "created_at": AT})
            except Exception as exc:  # the duplicate key, as the DBAPI reports it
                assert "unique" in str(exc).lower() or "duplicate" in str(exc).lower()
            with current().database.raw_read(conn) as reader:
                assert reader.first(select(RECEIPTS.c.id).where(RECEIPTS.c.id == "r3")) is None
            with current().database.raw_write(conn) as tx:
                tx.execute(insert(RECEIPTS), {"id": "r3", "subject_id": "s", "jws": "y", "created_at": AT})
        assert db.engine.pool.checkedout() == 0  # given back once, at the end
        assert db.session.get(Receipt, "r3").jws == "y"


def _receipt(i: int, jws: str = "x.y.z") -> dict[str, object]:
    return {"id": f"m{i:04d}", "subject_id": "s", "jws": jws, "created_at": AT + dt.timedelta(seconds=i)}


def test_many_rows_written_raw_are_each_stored_with_their_own_values(app: Flask) -> None:
    # 450 rows: more than one multi-row INSERT takes on PostgreSQL (200), so the batches
    # and the rows left over must all arrive, each with its own converted time.
    with app.app_context():
        with current().database.raw_write() as tx:
            tx.executemany(insert(RECEIPTS), [_receipt(i) for i in range(450)])
            tx.executemany(insert(RECEIPTS), [_receipt(1000 + i) for i in range(3)])
        rows = {r.id: r.created_at for r in db.session.scalars(select(Receipt))}
        assert len(rows) == 453
        assert rows["m0000"] == AT and rows["m0449"] == AT + dt.timedelta(seconds=449)
        assert rows["m1002"] == AT + dt.timedelta(seconds=1002)


def test_a_duplicate_among_many_rows_stores_none_of_them(app: Flask) -> None:
    with app.app_context():
        try:
            with current().database.raw_write() as tx:
                tx.executemany(insert(RECEIPTS), [_receipt(1), _receipt(2), _receipt(1)])
        except Exception as exc:
            assert "unique" in str(exc).lower() or "duplicate" in str(exc).lower()
        else:
            raise AssertionError("the duplicate key was not refused")
        assert db.session.scalars(select(Receipt)).all() == []


def test_reads_then_a_write_commit_together_and_see_what_was_read(app: Flask) -> None:
    with app.app_context():
        database = current().database
        with database.raw_write() as tx:
            tx.execute(insert(RECEIPTS), _receipt(1))
        with database.raw_connection() as conn, database.read_then_write(conn) as unit:
            with unit.read() as reader:
                later = reader.later("SELECT id FROM receipts ORDER BY id")
                row = reader.first(select(RECEIPTS.c.jws).where(RECEIPTS.c.id == "m0001"))
                assert [tuple(r) for r in later()] == [("m0001",)] and row.jws == "x.y.z"
            with unit.write() as tx:
                tx.execute(insert(RECEIPTS), _receipt(2, jws="after the read"))
        assert db.engine.pool.checkedout() == 0
        assert db.session.get(Receipt, "m0002").jws == "after the read"


def test_a_failed_write_after_reads_leaves_nothing_and_the_connection_ready(app: Flask) -> None:
    with app.app_context():
        database = current().database
        with database.raw_connection() as conn:
            try:
                with database.read_then_write(conn) as unit:
                    with unit.read() as reader:
                        assert reader.first(select(RECEIPTS.c.id)) is None
                    with unit.write() as tx:
                        tx.execute(insert(RECEIPTS), _receipt(5))
                        tx.execute(insert(RECEIPTS), _receipt(5))
            except Exception as exc:  # the duplicate key, as the DBAPI reports it (at the COMMIT on PostgreSQL)
                assert "unique" in str(exc).lower() or "duplicate" in str(exc).lower()
            else:
                raise AssertionError("the duplicate key was not refused")
            with database.read_then_write(conn) as unit:
                with unit.read() as reader:
                    assert reader.first(select(RECEIPTS.c.id)) is None
                with unit.write() as tx:
                    tx.execute(insert(RECEIPTS), _receipt(5, jws="the retry"))
        assert db.session.get(Receipt, "m0005").jws == "the retry"


def test_reads_alone_end_without_a_write_and_leave_the_connection_ready(app: Flask) -> None:
    with app.app_context():
        database = current().database
        with database.raw_connection() as conn:
            with database.read_then_write(conn) as unit, unit.read() as reader:
                assert reader.first(select(RECEIPTS.c.id)) is None
            with database.raw_write(conn) as tx:
                tx.execute(insert(RECEIPTS), _receipt(7))
        assert db.session.get(Receipt, "m0007") is not None


def test_rows_of_an_insert_that_skips_conflicts_all_skip_or_land(app: Flask) -> None:
    # ON CONFLICT follows the VALUES: such an INSERT must keep its clause for every row.
    with app.app_context():
        database = current().database
        dialect_insert = pg_insert if database.dialect.name == "postgresql" else sqlite_insert
        skipping = dialect_insert(RECEIPTS).on_conflict_do_nothing(index_elements=["id"])
        with database.raw_write() as tx:
            tx.execute(insert(RECEIPTS), _receipt(1, jws="first"))
        with database.raw_write() as tx:
            tx.executemany(skipping, [_receipt(1, jws="again"), _receipt(2), _receipt(3)])
        rows = {r.id: r.jws for r in db.session.scalars(select(Receipt))}
        assert rows == {"m0001": "first", "m0002": "x.y.z", "m0003": "x.y.z"}
