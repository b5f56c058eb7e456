"""Timing the retention report over many subjects: ``python -m bench.reports --subjects 1000000``.

Seeds a fresh SQLite database (migrated by the service) with bulk INSERTs, not the API:
per subject 4 fields, 3 consent states and 3 ledger events, creation times spread over
three years, a tenth of the profiling consents withdrawn. Then builds the report and
renders it in every format, printing the seconds each took, as a request does: the figures
read from the database, then the file (the issue's target: under 10 s each for 1,000,000
subjects).
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BATCH = 50_000
FIELDS = ("email", "first_name", "country", "birth_date")
PURPOSES = ("loyalty_club", "marketing_email", "profiling")
EPOCH = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite (naive UTC)."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _rows(start: int, count: int) -> Iterator[tuple[list[Any], list[Any], list[Any], list[Any]]]:
    subjects: list[Any] = []
    fields: list[Any] = []
    states: list[Any] = []
    events: list[Any] = []
    for n in range(start, start + count):
        sid = str(uuid.UUID(int=n + 1))
        created = _stamp(EPOCH - dt.timedelta(minutes=n % (3 * 365 * 24 * 60)))
        subjects.append((sid, n.to_bytes(32, "big"), b"k", "m", 0, created, created, created))
        fields += [(sid, name, b"c", created) for name in FIELDS]
        for i, purpose in enumerate(PURPOSES):
            status = "withdrawn" if purpose == "profiling" and n % 10 == 0 else "granted"
            seq = n * 3 + i + 1
            states.append((sid, purpose, status, created, created, seq))
            events.append((seq, sid, purpose, status, status, "{}", created, "0" * 64, "0" * 64))
    yield subjects, fields, states, events


def seed(path: Path, total: int) -> None:
    conn = sqlite3.connect(path)
    for start in range(0, total, BATCH):
        for subjects, fields, states, events in _rows(start, min(BATCH, total - start)):
            conn.executemany("INSERT INTO subjects (id, email_index, wrapped_key, master_key_id, restricted, "
                             "created_at, updated_at, last_activity_at) VALUES (?,?,?,?,?,?,?,?)", subjects)
            conn.executemany("INSERT INTO subject_fields (subject_id, name, ciphertext, updated_at) "
                             "VALUES (?,?,?,?)", fields)
            conn.executemany("INSERT INTO consent_states (subject_id, purpose, status, recorded_at, granted_at, "
                             "event_seq) VALUES (?,?,?,?,?,?)", states)
            conn.executemany("INSERT INTO consent_events (seq, subject_id, purpose, action, status, source, "
                             "recorded_at, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)", events)
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database to use instead of a SQLite file "
                             "(e.g. the PRIVACY_TEST_DATABASE_URL of .ci/postgres.sh); rows by COPY")
    args = parser.parse_args()
    os.environ.setdefault("PRIVACY_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    from flask_migrate import upgrade

    from api import create_app
    from api.services import current
    from exports.reports.render import render_retention
    from exports.reports.retention import purpose_titles, retention_report

    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "bench.db"
        url = args.database_url or f"sqlite:///{db_path}"
        app = create_app({"INSTANCE_DIR": folder, "DATABASE_URL": url})
        with app.app_context():
            upgrade()
        t0 = time.perf_counter()
        if args.database_url:
            _seed_postgres(url, args.subjects)
        else:
            seed(db_path, args.subjects)
        print(f"seeded {args.subjects:,} subjects in {time.perf_counter() - t0:.1f} s")
        with app.app_context():
            for fmt in ("json", "csv", "html", "pdf"):
                t0 = time.perf_counter()
                report = retention_report(current(), EPOCH)
                t1 = time.perf_counter()
                body = render_retention(report, fmt, "en", purpose_titles(current().policy, "en"))
                t2 = time.perf_counter()
                print(f"{fmt:>4}: {t2 - t0:.2f} s (figures {t1 - t0:.2f} s, file {t2 - t1:.2f} s; "
                      f"{len(report['figures'])} figures, {len(body):,} bytes)", flush=True)


def _seed_postgres(url: str, total: int) -> None:
    """:func:`seed` on PostgreSQL: the same rows by ``COPY`` (:mod:`bench.retention` has the code)."""
    from bench.retention import _Conn, _copy_rows

    conn = _Conn(url)
    _copy_rows(conn, total)
    conn.run("ANALYZE")


if __name__ == "__main__":
    main()
