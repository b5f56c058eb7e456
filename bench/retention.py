"""Timing the retention sweep over many subjects: ``python -m bench.retention --subjects 100000 300000``.

Per size, in a fresh temporary folder and each step in its own subprocess (so the peak RSS
printed is the sweep's alone):

1. ``seed``: a SQLite database migrated by the service, seeded with bulk INSERTs by
   :func:`bench.reports.seed` (4 fields, 3 states, 3 events per subject), then bulk UPDATEs
   make every tenth subject (those whose ``profiling`` consent that seed withdrew) *due*:
   last activity 800 days ago (``loyalty_club``'s 730-day ``anonymise`` rule fires), a real
   data key and real ciphertexts (the sweep decrypts them; each binds the subject id, so
   each due subject is encrypted for itself), ``profiling`` withdrawn yesterday (lapsed,
   not fired); half of them with ``marketing_email`` withdrawn 800 days ago (its ``delete``
   rule fires and beats ``anonymise``), the other half with it ``expired`` (anonymised).
   Every other subject was active yesterday and keeps everything. The file is copied for 2.
2. ``sweep``: ``RetentionService(ctx).run(as_of, dry_run=False, ...)`` with batches of 500,
   wall time, subjects examined and changed per second, ``ru_maxrss``.
3. ``baseline``: on the copy, plain SQL in one transaction: the due subjects' ids into a
   temporary table (the rule as one ``SELECT``), then ``DELETE`` their fields, states and rows.

The ratio is sweep seconds / baseline seconds (the issue's aim: within 3x). SQLite only:
:func:`bench.reports.seed` writes SQLite files (PostgreSQL is not measured here).
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

from bench.reports import EPOCH, seed

DUE_EVERY = 10  # bench.reports.seed withdraws profiling for n % 10 == 0: those become due
BATCH_SIZE = 500
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


def _app(folder: Path) -> Any:
    from api import create_app

    return create_app({"INSTANCE_DIR": str(folder), "DATABASE_URL": f"sqlite:///{folder / 'sweep.db'}"})


def _sealed(crypto: Any, n: int) -> tuple[tuple[bytes, str, str], list[tuple[bytes, str, str]]]:
    """Due subject ``n``: (wrapped key, key id, id) and its fields' (ciphertext, id, name)."""
    sid = _sid(n)
    dek, wrapped = crypto.new_data_key(sid)
    fields = [(crypto.encrypt_field(dek, sid, name, value.format(n=n, d=n % 28 + 1)), sid, name)
              for name, value in PLAIN.items()]
    return (wrapped, crypto.master_key_id, sid), fields


def _make_due(path: Path, crypto: Any, total: int) -> int:
    """Turn every tenth subject into a due one (see the module docstring); returns how many."""
    conn = sqlite3.connect(path)
    conn.execute("UPDATE subjects SET last_activity_at = ?", (_stamp(RECENT),))
    due = list(range(0, total, DUE_EVERY))
    for start in range(0, len(due), UPDATE_CHUNK):
        keys, fields = [], []
        for n in due[start:start + UPDATE_CHUNK]:
            key, sealed = _sealed(crypto, n)
            keys.append(key)
            fields += sealed
        conn.executemany("UPDATE subjects SET wrapped_key = ?, master_key_id = ?, last_activity_at = "
                         f"'{_stamp(OLD)}' WHERE id = ?", keys)
        conn.executemany("UPDATE subject_fields SET ciphertext = ? WHERE subject_id = ? AND name = ?", fields)
        states = [(s, _stamp(OLD if s == "withdrawn" else RECENT), _sid(n))
                  for n in due[start:start + UPDATE_CHUNK] for s in ("withdrawn" if n % 20 == 0 else "expired",)]
        conn.executemany("UPDATE consent_states SET status = ?, recorded_at = ? WHERE subject_id = ? "
                         "AND purpose = 'marketing_email'", states)
        conn.executemany("UPDATE consent_states SET recorded_at = ? WHERE subject_id = ? AND purpose = 'profiling'",
                         [(_stamp(RECENT), _sid(n)) for n in due[start:start + UPDATE_CHUNK]])
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return len(due)


def phase_seed(folder: Path, total: int) -> dict[str, Any]:
    """Step 1 (see the module docstring)."""
    from flask_migrate import upgrade

    from api.services import current

    app = _app(folder)
    with app.app_context():
        upgrade()
        t0 = time.perf_counter()
        seed(folder / "sweep.db", total)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        due = _make_due(folder / "sweep.db", current().crypto, total)
        made_due = time.perf_counter() - t0
    return {"seed_s": seeded, "make_due_s": made_due, "due": due}


def phase_sweep(folder: Path, total: int) -> dict[str, Any]:
    """Step 2: the real sweep, timed; the peak RSS of this process (it did nothing else)."""
    from api.services import current
    from privacy.retention.sweep import RetentionService

    app = _app(folder)
    with app.app_context():
        service = RetentionService(current())
        t0 = time.perf_counter()
        summary = service.run(EPOCH, False, "bench", batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - t0
    changed = summary["subjects"]["deleted"] + summary["subjects"]["anonymised"]
    left = sqlite3.connect(folder / "sweep.db").execute("SELECT count(*) FROM subjects").fetchone()[0]
    return {"sweep_s": seconds, "examined": total, "changed": changed, "deleted": summary["subjects"]["deleted"],
            "anonymised": summary["subjects"]["anonymised"], "left": left,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def phase_baseline(folder: Path, total: int) -> dict[str, Any]:
    """Step 3: the same rows removed by plain SQL, one transaction."""
    conn = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    cutoff = _stamp(EPOCH - dt.timedelta(days=730))
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE due AS SELECT id FROM subjects WHERE last_activity_at <= ?", (cutoff,))
    rows = conn.execute("DELETE FROM subject_fields WHERE subject_id IN (SELECT id FROM due)").rowcount
    rows += conn.execute("DELETE FROM consent_states WHERE subject_id IN (SELECT id FROM due)").rowcount
    gone = conn.execute("DELETE FROM subjects WHERE id IN (SELECT id FROM due)").rowcount
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return {"baseline_s": seconds, "baseline_subjects": gone, "baseline_rows": rows + gone}


PHASES = {"seed": phase_seed, "sweep": phase_sweep, "baseline": phase_baseline}


def _child(phase: str, folder: Path, total: int) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its JSON result."""
    done = subprocess.run([sys.executable, "-m", "bench.retention", "--phase", phase, "--folder", str(folder),
                           "--subjects", str(total)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _round(folder: Path, total: int) -> dict[str, Any]:
    """Steps 2 and 3 on fresh copies of the seeded database; prints one line."""
    shutil.copy(folder / "seeded.db", folder / "sweep.db")
    shutil.copy(folder / "seeded.db", folder / "baseline.db")
    result = {**_child("sweep", folder, total), **_child("baseline", folder, total)}
    result["ratio"] = result["sweep_s"] / result["baseline_s"]
    print(f"  {total:,}: sweep {result['sweep_s']:.1f} s ({result['deleted']:,} deleted, "
          f"{result['anonymised']:,} anonymised, {result['left']:,} left), peak RSS {result['maxrss_mb']:.0f} MB; "
          f"plain SQL {result['baseline_s']:.2f} s ({result['baseline_subjects']:,} subjects); "
          f"ratio {result['ratio']:.1f}x", flush=True)
    return result


def measure(total: int, rounds: int) -> dict[str, Any]:
    """Step 1 once, then ``rounds`` rounds of steps 2-3 for ``total`` subjects: the medians
    (peak RSS: the highest)."""
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as name:
        folder = Path(name)
        result = {"subjects": total, "rounds": rounds, **_child("seed", folder, total)}
        (folder / "sweep.db").rename(folder / "seeded.db")
        print(f"  {total:,}: seeded in {result['seed_s']:.1f} s, {result['due']:,} made due in "
              f"{result['make_due_s']:.1f} s", flush=True)
        runs = [_round(folder, total) for _ in range(rounds)]
    for key in ("sweep_s", "baseline_s", "ratio"):
        result[key] = statistics.median(r[key] for r in runs)
    result.update(changed=runs[0]["changed"], examined=total, maxrss_mb=max(r["maxrss_mb"] for r in runs))
    return result


def table(results: list[dict[str, Any]]) -> None:
    """The figures as a Markdown table."""
    print("\n| subjects | rounds | due | sweep | examined/s | changed/s | plain SQL | ratio | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['subjects']:,} | {r['rounds']} | {r['changed']:,} | {r['sweep_s']:.1f} s "
              f"| {r['examined'] / r['sweep_s']:,.0f} "
              f"| {r['changed'] / r['sweep_s']:,.0f} | {r['baseline_s']:.2f} s | "
              f"{r['ratio']:.1f}x | {r['maxrss_mb']:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=1, help="sweep and baseline rounds per size (medians)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("PRIVACY_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.folder, args.subjects[0])))
        return
    print(f"== retention sweep, SQLite, 1 in {DUE_EVERY} subjects due, batches of {BATCH_SIZE}, as of {EPOCH:%Y-%m-%d}")
    results = [measure(total, args.rounds) for total in args.subjects]
    table(results)


if __name__ == "__main__":
    main()
