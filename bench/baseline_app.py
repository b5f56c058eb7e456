"""The baseline the service is measured against: the least a Flask app must do.

``POST /write`` parses a JSON body and inserts one row (an id, a lookup key and the
body as JSON text) into SQLite, then commits: the unavoidable cost of one durable
write. ``GET /read/<key>`` does one SELECT by an indexed column and returns a tiny
JSON. The engine applies the service's own SQLite pragmas (``privacy.storage.database
.apply_sqlite_pragmas``) on every new connection, so both sides run on the same
journal mode, synchronous level and busy timeout.

Run it under gunicorn from the repository root, with the database file in
``BENCH_BASELINE_DB`` (its schema is created beforehand by :func:`create_schema`)::

    export BENCH_BASELINE_DB=/tmp/x/baseline.db
    gunicorn -w 2 -b 127.0.0.1:8001 'bench.baseline_app:create_app()'

On PostgreSQL, give a database URL in ``BENCH_BASELINE_DATABASE_URL`` instead (it wins
over ``BENCH_BASELINE_DB``), e.g. ``postgresql+psycopg://user:pw@127.0.0.1:5432/base``:
the engine then has the service's pool settings on a server database (SQLAlchemy's
default pool; through psycopg the service's check at checkout,
:func:`privacy.storage.postgres.check_at_checkout`, else ``pool_pre_ping``), and each write
is the same INSERT and COMMIT.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from flask import Flask, abort, jsonify, request
from sqlalchemy import (
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
)

from privacy.storage.postgres import check_at_checkout, checked_at_checkout
from privacy.storage.sqlite import apply_sqlite_pragmas

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key", String(320), nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_records_key", "key"),
)


URL_ENV = "BENCH_BASELINE_DATABASE_URL"
"""A server database for the baseline (wins over ``BENCH_BASELINE_DB``, a SQLite file)."""


def make_engine(db_path: str) -> Engine:
    """An engine on the SQLite file ``db_path`` with the service's pragmas applied, or on the
    database URL ``db_path`` (anything with ``://``) with the service's pool settings."""
    if "://" in db_path:
        engine = create_engine(db_path, pool_pre_ping=not checked_at_checkout(db_path), hide_parameters=True)
        check_at_checkout(engine)
        return engine
    engine = create_engine(f"sqlite:///{db_path}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        apply_sqlite_pragmas(dbapi_connection)

    return engine


def create_schema(db_path: str) -> None:
    """Create the baseline table and its index (run once, before the workers start) in the
    SQLite file or database URL ``db_path``."""
    engine = make_engine(db_path)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def create_app(db_path: str | None = None) -> Flask:
    """The baseline Flask app on ``db_path``, a SQLite file or a database URL (default
    ``$BENCH_BASELINE_DATABASE_URL``, else ``$BENCH_BASELINE_DB``)."""
    path = db_path or os.environ.get(URL_ENV) or os.environ["BENCH_BASELINE_DB"]
    engine = make_engine(path)
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.post("/write")
    def write() -> Any:
        body = request.get_json(force=False, silent=False)
        if not isinstance(body, dict):
            abort(400)
        subject = body.get("subject") or {}
        key = str(subject.get("email") or uuid.uuid4().hex)
        row_id = uuid.uuid4().hex
        with engine.begin() as conn:  # one INSERT, one COMMIT
            conn.execute(insert(records).values(id=row_id, key=key, payload=json.dumps(body)))
        return jsonify(id=row_id), 201

    @app.get("/read/<key>")
    def read(key: str) -> Any:
        with engine.connect() as conn:
            row = conn.execute(select(records.c.id).where(records.c.key == key).limit(1)).first()
        if row is None:
            abort(404)
        return jsonify(key=key, id=row.id)

    return app
