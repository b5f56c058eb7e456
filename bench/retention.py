"""Timing the retention sweep over many subjects: ``python -m bench.retention``.

``--subjects`` sizes on SQLite (default 100,000 and 1,000,000), ``--postgres-subjects`` on
PostgreSQL (default 100,000; ``PRIVACY_BENCH_DATABASE_URL`` or a throwaway server from
``.ci/postgres.sh``; none given skips it), ``--rounds`` sweeps per size (medians). Per size,
each step in its own subprocess (so the peak RSS printed is the sweep's alone):

1. ``seed``: a database migrated by the service, seeded with bulk INSERTs by
   :func:`bench.reports.seed` (its rows by ``COPY`` on PostgreSQL: 4 fields, 3 states, 3
   events per subject), then bulk UPDATEs make every tenth subject (those whose
   ``profiling`` consent that seed withdrew) *due*: last activity 800 days ago
   (``loyalty_club``'s 730-day ``anonymise`` rule fires), a real data key and real
   ciphertexts (the sweep decrypts them; each binds the subject id, so each due subject is
   encrypted for itself), ``profiling`` withdrawn yesterday (lapsed, not fired); half of
   them with ``marketing_email`` withdrawn 800 days ago (its ``delete`` rule fires and beats
   ``anonymise``), the other half with it ``expired`` (anonymised). Every other subject was
   active yesterday and keeps everything.
2. ``sweep``: on a fresh copy, ``RetentionService(ctx).run(as_of, dry_run=False, ...)`` with
   the service's batches (``privacy.retention.sweep.BATCH_SIZE``): wall time, subjects
   examined and changed per second, ``ru_maxrss``.
3. ``baseline``: on another copy, plain SQL in one transaction: the due subjects' ids into
   a temporary table (the rule as one ``SELECT``), then ``DELETE`` their fields, states and rows.

The ratio is sweep seconds / baseline seconds (the issue's aim: within 3x).
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.fanout_load import postgres
from bench.reports import BATCH, EPOCH, _rows, seed
from privacy.retention.sweep import BATCH_SIZE

DUE_EVERY = 10  # bench.reports.seed withdraws profiling for n % 10 == 0: those become due
UPDATE_CHUNK = 20_000
OLD = EPOCH - dt.timedelta(days=800)
RECENT = EPOCH - dt.timedelta(days=1)
PLAIN = {"email": "member{n}@example.se", "first_name": "Name{n}", "country": "SE", "birth_date": "1980-01-{d:02d}"}


def _stamp(moment: dt.datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite (naive UTC), as bench.reports writes them."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sid(n: int) -> str:
    """Subject ``n``'s id as :func:`bench.reports.seed` makes it."""
    return str(uuid.UUID(int=n + 1))


def _app(folder: Path, url: str) -> Any:
    from api import create_app

    return create_app({"INSTANCE_DIR": str(folder), "DATABASE_URL": url})


def _url(base: str, folder: Path, name: str) -> str:
    """Database ``name``: a file in ``folder`` on SQLite, a database of the server on PostgreSQL."""
    return f"sqlite:///{folder / name}.db" if base == "sqlite" else f"{base.rsplit('/', 1)[0]}/{name}"


class _Conn:
    """A DB-API cursor in autocommit mode (transactions are explicit), ``?`` placeholders on both."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
            self.conn.execute("SET TimeZone TO 'UTC'")
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        self.cur = self.conn.cursor()

    def run(self, sql: str, params: Any = ()) -> int:
        self.cur.execute(sql.replace("?", "%s") if self.pg else sql, params)
        return int(self.cur.rowcount)

    def many(self, sql: str, rows: list[Any]) -> None:
        self.cur.executemany(sql.replace("?", "%s") if self.pg else sql, rows)

    def one(self, sql: str) -> Any:
        self.cur.execute(sql)
        return self.cur.fetchone()[0]


def _copy_rows(conn: _Conn, total: int) -> None:
    """:func:`bench.reports.seed` for PostgreSQL: its rows (:func:`bench.reports._rows`) by ``COPY``."""
    tables = (("subjects", "id, email_index, wrapped_key, master_key_id, restricted, created_at, updated_at, "
               "last_activity_at"), ("subject_fields", "subject_id, name, ciphertext, updated_at"),
              ("consent_states", "subject_id, purpose, status, recorded_at, granted_at, event_seq"),
              ("consent_events", "seq, subject_id, purpose, action, status, source, recorded_at, prev_hash, hash"))
    for start in range(0, total, BATCH):
        for batch in _rows(start, min(BATCH, total - start)):
            conn.run("BEGIN")
            for (table, columns), rows in zip(tables, batch, strict=True):
                with conn.cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([bool(v) if c == "restricted" else v
                                        for c, v in zip(columns.split(", "), row, strict=True)])
            conn.run("COMMIT")


def _sealed(crypto: Any, n: int) -> tuple[tuple[bytes, str, str], list[tuple[bytes, str, str]]]:
    """Due subject ``n``: (wrapped key, key id, id) and its fields' (ciphertext, id, name)."""
    sid = _sid(n)
    dek, wrapped = crypto.new_data_key(sid)
    fields = [(crypto.encrypt_field(dek, sid, name, value.format(n=n, d=n % 28 + 1)), sid, name)
              for name, value in PLAIN.items()]
    return (wrapped, crypto.master_key_id, sid), fields


def _make_due(conn: _Conn, crypto: Any, total: int) -> int:
    """Turn every tenth subject into a due one (see the module docstring); returns how many."""
    conn.run("UPDATE subjects SET last_activity_at = ?", (_stamp(RECENT),))
    due = list(range(0, total, DUE_EVERY))
    for start in range(0, len(due), UPDATE_CHUNK):
        conn.run("BEGIN")
        keys, fields = [], []
        for n in due[start:start + UPDATE_CHUNK]:
            key, sealed = _sealed(crypto, n)
            keys.append(key)
            fields += sealed
        conn.many("UPDATE subjects SET wrapped_key = ?, master_key_id = ?, last_activity_at = "
                  f"'{_stamp(OLD)}' WHERE id = ?", keys)
        conn.many("UPDATE subject_fields SET ciphertext = ? WHERE subject_id = ? AND name = ?", fields)
        states = [("withdrawn", _stamp(OLD), _sid(n)) if n % 20 == 0 else ("expired", _stamp(RECENT), _sid(n))
                  for n in due[start:start + UPDATE_CHUNK]]
        conn.many("UPDATE consent_states SET status = ?, recorded_at = ? WHERE subject_id = ? "
                  "AND purpose = 'marketing_email'", states)
        conn.many("UPDATE consent_states SET recorded_at = ? WHERE subject_id = ? AND purpose = 'profiling'",
                  [(_stamp(RECENT), _sid(n)) for n in due[start:start + UPDATE_CHUNK]])
        conn.run("COMMIT")
    conn.run("ANALYZE")
    if not conn.pg:
        conn.run("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone is then the whole database
    return len(due)


def phase_seed(folder: Path, url: str, total: int) -> dict[str, Any]:
    """Step 1 (see the module docstring)."""
    from flask_migrate import upgrade

    from api.services import current

    app = _app(folder, url)
    with app.app_context():
        upgrade()
        current().database.engine.dispose()
        conn = _Conn(url)
        t0 = time.perf_counter()
        if conn.pg:
            _copy_rows(conn, total)
        else:
            seed(Path(url.removeprefix("sqlite:///")), total)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        due = _make_due(conn, current().crypto, total)
        made_due = time.perf_counter() - t0
    return {"seed_s": seeded, "make_due_s": made_due, "due": due}


def phase_sweep(folder: Path, url: str, total: int) -> dict[str, Any]:
    """Step 2: the real sweep, timed; the peak RSS of this process (it did nothing else)."""
    from api.services import current
    from privacy.retention.sweep import RetentionService

    app = _app(folder, url)
    with app.app_context():
        service = RetentionService(current())
        t0 = time.perf_counter()
        summary = service.run(EPOCH, False, "bench", batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - t0
    changed = summary["subjects"]["deleted"] + summary["subjects"]["anonymised"]
    left = _Conn(url).one("SELECT count(*) FROM subjects")
    return {"sweep_s": seconds, "examined": total, "changed": changed, "deleted": summary["subjects"]["deleted"],
            "anonymised": summary["subjects"]["anonymised"], "left": left,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def phase_baseline(folder: Path, url: str, total: int) -> dict[str, Any]:
    """Step 3: the same rows removed by plain SQL, one transaction."""
    conn = _Conn(url)
    cutoff = _stamp(EPOCH - dt.timedelta(days=730))
    t0 = time.perf_counter()
    conn.run("BEGIN")
    conn.run("CREATE TEMP TABLE due AS SELECT id FROM subjects WHERE last_activity_at <= ?", (cutoff,))
    rows = conn.run("DELETE FROM subject_fields WHERE subject_id IN (SELECT id FROM due)")
    rows += conn.run("DELETE FROM consent_states WHERE subject_id IN (SELECT id FROM due)")
    gone = conn.run("DELETE FROM subjects WHERE id IN (SELECT id FROM due)")
    conn.run("COMMIT")
    return {"baseline_s": time.perf_counter() - t0, "baseline_subjects": gone, "baseline_rows": rows + gone}


PHASES = {"seed": phase_seed, "sweep": phase_sweep, "baseline": phase_baseline}
MODULE = __spec__.name if __spec__ else "bench.retention"


def _child(phase: str, folder: Path, url: str, total: int) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its JSON result."""
    done = subprocess.run([sys.executable, "-m", MODULE, "--phase", phase, "--folder", str(folder), "--db", url,
                           "--subjects", str(total)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _fresh(base: str, folder: Path, source: str, name: str) -> str:
    """A new copy of database ``source`` named ``name``; its URL."""
    if base == "sqlite":
        for stale in ("-wal", "-shm"):  # a copied file must not meet the last round's WAL
            (folder / f"{name}.db{stale}").unlink(missing_ok=True)
        shutil.copy(folder / f"{source}.db", folder / f"{name}.db")
    else:
        admin = _Conn(base)
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.run(f"CREATE DATABASE {name} TEMPLATE {source}")
    return _url(base, folder, name)


def _round(base: str, folder: Path, total: int) -> dict[str, Any]:
    """Steps 2 and 3 on fresh copies of the seeded database; prints one line."""
    result = {**_child("sweep", folder, _fresh(base, folder, "bench_seeded", "bench_sweep"), total),
              **_child("baseline", folder, _fresh(base, folder, "bench_seeded", "bench_base"), total)}
    result["ratio"] = result["sweep_s"] / result["baseline_s"]
    print(f"  {total:,}: sweep {result['sweep_s']:.1f} s ({result['deleted']:,} deleted, "
          f"{result['anonymised']:,} anonymised, {result['left']:,} left), peak RSS {result['maxrss_mb']:.0f} MB; "
          f"plain SQL {result['baseline_s']:.2f} s ({result['baseline_subjects']:,} subjects); "
          f"ratio {result['ratio']:.1f}x", flush=True)
    return result


def measure(base: str, total: int, rounds: int) -> dict[str, Any]:
    """Step 1 once, then ``rounds`` rounds of steps 2-3 for ``total`` subjects on ``base``
    (``sqlite`` or a PostgreSQL URL): the medians (peak RSS: the highest)."""
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as name:
        folder = Path(name)
        if base != "sqlite":
            _Conn(base).run("DROP DATABASE IF EXISTS bench_seeded WITH (FORCE)")
            _Conn(base).run("CREATE DATABASE bench_seeded")
        seeded = _child("seed", folder, _url(base, folder, "bench_seeded"), total)
        result = {"database": "SQLite" if base == "sqlite" else "PostgreSQL", "subjects": total, "rounds": rounds,
                  **seeded}
        print(f"  {total:,}: seeded in {result['seed_s']:.1f} s, {result['due']:,} made due in "
              f"{result['make_due_s']:.1f} s", flush=True)
        runs = [_round(base, folder, total) for _ in range(rounds)]
    for key in ("sweep_s", "baseline_s", "ratio"):
        result[key] = statistics.median(r[key] for r in runs)
    result.update(changed=runs[0]["changed"], examined=total, maxrss_mb=max(r["maxrss_mb"] for r in runs))
    return result


def table(results: list[dict[str, Any]]) -> None:
    """The figures as a Markdown table."""
    print("\n| database | subjects | rounds | due | sweep | examined/s | changed/s | plain SQL | ratio | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['database']} | {r['subjects']:,} | {r['rounds']} | {r['changed']:,} | {r['sweep_s']:.1f} s "
              f"| {r['examined'] / r['sweep_s']:,.0f} | {r['changed'] / r['sweep_s']:,.0f} | {r['baseline_s']:.2f} s "
              f"| {r['ratio']:.1f}x | {r['maxrss_mb']:.0f} MB |")


def run_postgres(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    """The sizes on PostgreSQL (``PRIVACY_BENCH_DATABASE_URL`` or a throwaway server)."""
    with postgres() as (url, where):
        if url is None:
            print(f"== PostgreSQL skipped: {where}")
            return []
        print(f"== PostgreSQL ({where})")
        return [measure(url, total, rounds) for total in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="*", default=[100_000, 1_000_000],
                        help="sizes on SQLite (none: skip it)")
    parser.add_argument("--postgres-subjects", type=int, nargs="*", default=[100_000],
                        help="sizes on PostgreSQL (none: skip it)")
    parser.add_argument("--rounds", type=int, default=1, help="sweep and baseline rounds per size (medians)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("PRIVACY_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.folder, args.db, args.subjects[0])))
        return
    print(f"== retention sweep, 1 in {DUE_EVERY} subjects due, batches of {BATCH_SIZE}, as of {EPOCH:%Y-%m-%d}")
    results = []
    if args.subjects:
        print("== SQLite")
        results = [measure("sqlite", total, args.rounds) for total in args.subjects]
    if args.postgres_subjects:
        results += run_postgres(args.postgres_subjects, args.rounds)
    table(results)


if __name__ == "__main__":
    main()
