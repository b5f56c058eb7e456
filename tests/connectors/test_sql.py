"""The sql connector against a temporary SQLite file and, when PRIVACY_TEST_DATABASE_URL
names one, the same tests against PostgreSQL (in uniquely named tables dropped afterwards)."""
from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select

from privacy.connectors.base import ConfigError, ConnectorError, Skip, TaskCall
from privacy.connectors.registry import build
from privacy.connectors.sql import SqlConnector
from privacy.policy.file import ConnectorDef

EMAIL = "anna.lind@example.se"
OTHER = "bo@example.se"
PG_URL = os.environ.get("PRIVACY_TEST_DATABASE_URL")


@dataclass
class Db:
    url: str
    engine: Engine
    customers: Table
    orders: Table

    def rows(self, tbl: Table) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(tbl).order_by(tbl.c.id)).mappings()]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("PRIVACY_TEST_DATABASE_URL is not set")
        url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1) if PG_URL.startswith(
            "postgresql://") else PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    meta = MetaData()
    customers = Table(f"{prefix}customers", meta, Column("id", Integer, primary_key=True),
                      Column("email", String(200)), Column("customer_no", String(20)), Column("name", String(100)),
                      Column("phone", String(30)), Column("address", String(200)))
    orders = Table(f"{prefix}orders", meta, Column("id", Integer, primary_key=True),
                   Column("customer_email", String(200)), Column("delivery_address", String(200), nullable=False),
                   Column("total", Integer))
    engine = create_engine(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(customers.insert(), [
            {"id": 1, "email": "Anna.Lind@Example.se", "customer_no": "C-1", "name": "Anna", "phone": "+4670111",
             "address": "Storgatan 1"},
            {"id": 2, "email": OTHER, "customer_no": "C-2", "name": "Bo", "phone": "+4670222", "address": "Ö 2"},
            {"id": 3, "email": "o'brien@example.se", "customer_no": "C-3", "name": "Sean", "phone": None,
             "address": None}])
        conn.execute(orders.insert(), [
            {"id": 1, "customer_email": EMAIL, "delivery_address": "Storgatan 1", "total": 100},
            {"id": 2, "customer_email": EMAIL, "delivery_address": "Kungsgatan 2", "total": 250},
            {"id": 3, "customer_email": OTHER, "delivery_address": "Ö 2", "total": 5}])
    try:
        yield Db(url, engine, customers, orders)
    finally:
        meta.drop_all(engine)
        engine.dispose()


def tables(db: Db, *, orders_erase: str = "delete", orders_columns: tuple[str, ...] = ("delivery_address",)
           ) -> list[dict[str, Any]]:
    return [{"name": db.customers.name, "key": "email", "columns": ["name", "phone"], "erase": "null"},
            {"name": db.orders.name, "key": "customer_email", "columns": list(orders_columns),
             "erase": orders_erase}]


@pytest.fixture(autouse=True)
def _close_connectors(db: Db) -> Iterator[None]:
    yield
    while BUILT:
        BUILT.pop().close()


BUILT: list[SqlConnector] = []


def connector(db: Db, environ: dict[str, str] | None = None, **settings: Any) -> SqlConnector:
    definition = ConnectorDef(name="orders", type="sql", operations=("access", "erasure", "rectification"),
                              retry={}, timeout_s=5, settings={"url_env": "ORDERS_DATABASE_URL",
                                                               "tables": tables(db), **settings})
    built = build(definition, {"ORDERS_DATABASE_URL": db.url} if environ is None else environ)
    assert isinstance(built, SqlConnector)
    BUILT.append(built)
    return built


def call(operation: str, email: str = EMAIL, **kwargs: Any) -> TaskCall:
    return TaskCall(id="task-3", operation=operation, email=email, **kwargs)


def test_access_returns_only_the_declared_columns_of_each_table(db: Db) -> None:
    result = connector(db).run(call("access"))
    assert result.outcome == "done"
    assert result.data == {db.customers.name: [{"name": "Anna", "phone": "+4670111"}],
                           db.orders.name: [{"delivery_address": "Storgatan 1"}, {"delivery_address": "Kungsgatan 2"}]}


def test_access_for_an_unknown_person_is_not_found_with_empty_data(db: Db) -> None:
    result = connector(db).run(call("access", email="nobody@example.se"))
    assert (result.outcome, result.data) == ("not_found", {})


def test_erasure_blanks_or_deletes_as_each_table_says(db: Db) -> None:
    result = connector(db).run(call("erasure"))
    assert result.outcome == "done"
    anna, bo, sean = db.rows(db.customers)
    assert (anna["name"], anna["phone"], anna["address"]) == (None, None, "Storgatan 1")
    assert bo["name"] == "Bo" and sean["name"] == "Sean"
    assert [o["customer_email"] for o in db.rows(db.orders)] == [OTHER]
    assert EMAIL not in result.excerpt


def test_erasure_changes_all_tables_in_one_transaction(db: Db) -> None:
    # orders.delivery_address is NOT NULL: blanking it fails after customers was blanked.
    sql = connector(db, tables=tables(db, orders_erase="null"))
    with pytest.raises(ConnectorError) as failure:
        sql.run(call("erasure"))
    assert failure.value.retryable is False
    assert "IntegrityError" in failure.value.reason and EMAIL not in failure.value.reason
    assert db.rows(db.customers)[0]["name"] == "Anna"
    assert len(db.rows(db.orders)) == 3


def test_erasure_of_a_person_no_table_holds_is_not_found(db: Db) -> None:
    assert connector(db).run(call("erasure", email="nobody@example.se")).outcome == "not_found"


def test_an_email_with_a_quote_cannot_inject(db: Db) -> None:
    sql = connector(db)
    assert sql.run(call("erasure", email="x' OR '1'='1")).outcome == "not_found"
    assert sql.run(call("erasure", email="x\\' OR 1=1 --")).outcome == "not_found"
    assert [c["name"] for c in db.rows(db.customers)] == ["Anna", "Bo", "Sean"]
    result = sql.run(call("access", email="o'brien@example.se"))
    assert result.data == {db.customers.name: [{"name": "Sean", "phone": None}]}


def test_rectification_updates_the_declared_columns_the_fields_mapping_names(db: Db) -> None:
    sql = connector(db, fields={"first_name": "name"})
    changes = {"first_name": "Anna-Karin", "phone": "+4670999", "postal_code": "41101", "last_name": ""}
    result = sql.run(call("rectification", changes=changes))
    assert result.outcome == "done"
    anna = db.rows(db.customers)[0]
    assert (anna["name"], anna["phone"]) == ("Anna-Karin", "+4670999")
    assert db.rows(db.customers)[1]["name"] == "Bo"


def test_rectification_of_an_unknown_person_is_not_found(db: Db) -> None:
    result = connector(db).run(call("rectification", email="nobody@example.se", changes={"phone": "+4670"}))
    assert result.outcome == "not_found"


def test_rectification_of_fields_no_table_holds_is_skipped(db: Db) -> None:
    with pytest.raises(Skip):
        connector(db).run(call("rectification", changes={"country": "SE"}))


def test_a_table_keyed_by_subject_id_uses_the_requests_subject(db: Db) -> None:
    keyed = [{"name": db.customers.name, "key": "customer_no", "key_value": "subject_id",
              "columns": ["name"], "erase": "null"}]
    sql = connector(db, tables=keyed)
    result = sql.run(call("access", email="unrelated@example.se", subject_id="C-2"))
    assert result.data == {db.customers.name: [{"name": "Bo"}]}
    with pytest.raises(Skip):
        sql.run(call("access"))


def test_an_unreachable_database_is_retryable(db: Db, tmp_path: Path) -> None:
    sql = connector(db, environ={"ORDERS_DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'x.db'}"})
    with pytest.raises(ConnectorError) as failure:
        sql.run(call("access"))
    assert failure.value.retryable is True


def test_a_missing_column_fails_at_once(db: Db) -> None:
    sql = connector(db, tables=tables(db, orders_erase="null", orders_columns=("no_such_column",)))
    with pytest.raises(ConnectorError) as failure:
        sql.test_connection()
    assert failure.value.retryable is False
    with pytest.raises(ConnectorError) as erasing:
        sql.run(call("erasure"))
    assert erasing.value.retryable is False and db.rows(db.customers)[0]["name"] == "Anna"


def test_test_connection_reads_every_declared_table(db: Db) -> None:
    assert "2 table(s)" in connector(db).test_connection()


def test_the_engine_is_created_once_for_all_threads(db: Db) -> None:
    sql = connector(db)
    threads = [threading.Thread(target=sql.run, args=(call("access"),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine = sql.engine
    sql.run(call("access"))
    assert sql.engine is engine


def test_a_missing_url_variable_is_named_and_a_bad_url_is_not_echoed(db: Db) -> None:
    with pytest.raises(ConnectorError) as missing:
        connector(db, environ={}).run(call("access"))
    assert "ORDERS_DATABASE_URL" in missing.value.reason and missing.value.retryable is False
    with pytest.raises(ConnectorError) as bad:
        connector(db, environ={"ORDERS_DATABASE_URL": "not a url:secretpw"}).run(call("access"))
    assert "secretpw" not in bad.value.reason and bad.value.retryable is False


@pytest.mark.parametrize(("change", "key"), [
    ({"url_env": ""}, r"url_env"),
    ({"tables": []}, r"tables"),
    ({"tables": [{"name": "customers; DROP TABLE x", "key": "email", "columns": ["name"], "erase": "null"}]},
     r"tables\[0\]\.name"),
    ({"tables": [{"name": "customers", "key": "e-mail", "columns": ["name"], "erase": "null"}]},
     r"tables\[0\]\.key"),
    ({"tables": [{"name": "customers", "key": "email", "columns": [], "erase": "null"}]}, r"tables\[0\]\.columns"),
    ({"tables": [{"name": "customers", "key": "email", "columns": ["name"], "erase": "wipe"}]},
     r"tables\[0\]\.erase"),
    ({"tables": [{"name": "c", "key": "id", "columns": ["name"], "erase": "null", "key_value": "phone"}]},
     r"tables\[0\]\.key_value"),
    ({"fields": {"first_name": "name, phone"}}, r"fields\.first_name"),
])
def test_a_bad_setting_is_a_config_error_naming_the_key(db: Db, change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"connectors\[orders\]\.{key}:"):
        connector(db, **change)
