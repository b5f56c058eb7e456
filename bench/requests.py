"""``python -m bench.requests``: data-subject requests, in-process (no HTTP), against targets and a baseline.

1. ``access``: for each size (10 and 1,000 requests; ``--quick``: 10 and 100) a fresh
   SQLite database gets that many distinct subjects, each signed up through the real
   ``ConsentService.record`` (loyalty_club, profiling, sms, targeted_ads) and then
   flipping profiling, sms and targeted_ads between withdrawn and granted until it has
   at least 20 consent events (counted on ``consent_events``). One access request per
   subject is opened with ``RequestService.open``; its verification token only exists
   in the mailed link, so the bench overwrites the request's ``request_tokens`` row
   (purpose ``verify``) with the hash of a token of its own. Then each request is
   verified with ``RequestService.verify``, which plans the task, runs the local work
   and builds the sealed package (status ``completed``). Only that verify + package
   phase is timed: packages per second and median ms per package are printed.

   Memory: each size runs in fresh processes, so the sizes are comparable. One child
   (``--child seed``) migrates, seeds and opens the requests; a second, fresh child
   (``--child package``) only verifies them and reads ``ru_maxrss`` (a high-water mark)
   when its setup is done, after the first package and at the end. Seeding has its own
   process because a high-water mark reached while seeding would hide any growth while
   packaging. Target: peak RSS of the package child at the large size <= 1.20 x that at
   10 requests. Checks: one ``*.zip.sealed`` file per request in the exports folder, and
   one package opened with ``package_for_officer`` is a zip whose data.json holds the
   subject's consent history.

2. ``erasure``: a fresh subject with at least 1,000 consent events (the same flipping,
   three events per call), an erasure request opened and its token set as above; the
   database is copied (sqlite3 backup API) and then ``RequestService.verify`` is timed:
   the whole click, which holds this service's local work (re-sealing held fields,
   withdrawing consents, the suppression entry, deleting the rows, audit entries) and
   the completion mail into the outbox. ``run_local`` (the erasure itself) and
   ``complete_if_ready`` are timed inside it as well. The baseline deletes the same rows
   on the copy with plain ``sqlite3`` (the service's pragmas, the rows read once
   beforehand so both sides start from a warm cache): ``DELETE FROM subject_fields``,
   ``consent_states`` and ``subjects`` for that subject in one transaction, and
   ``COMMIT``. Neither side deletes ``consent_events``: the ledger keeps its
   pseudonymous events as proof. Median of ``--rounds`` rounds (a fresh subject each,
   default 5, quick 2). Target: median verify < 100 ms.

Prints one table per scenario and writes ``bench/results/requests.json``. The exit status
is 0 when everything ran, even if a target was missed (this is a report); 1 when the
service misbehaved (a request not completed, a package missing or unreadable, rows left
behind); 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import io
import json
import logging
import os
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.bulk import scoped_environ
from bench.report import finish, start
from bench.servers import REPO_ROOT, tail
from privacy.crypto.keys import generate_master_key

if TYPE_CHECKING:
    from flask import Flask

    from privacy.consent.service import ConsentService

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "requests.json"
MASTER_KEY_ENV = "BENCH_REQUESTS_MASTER_KEY"
"""How the parent hands the master key to its children (not on the command line)."""

SIZES = (10, 1_000)
QUICK_SIZES = (10, 100)
EVENTS_PER_SUBJECT = 20
ERASURE_EVENTS = 1_000
RSS_TARGET = 1.20
"""Peak RSS of the large size over that of the small size, at most."""
ERASURE_TARGET_MS = 100.0
"""Median ms of the verify that erases a subject with 1,000 consent events, under."""

SIGNUP_PURPOSES = {"loyalty_club": True, "profiling": True, "sms": True, "targeted_ads": True}
FLIPPED = ("profiling", "sms", "targeted_ads")
"""Consent purposes without double opt-in: each flip is one event per purpose."""
NOTICE_VERSION = "2026-11-01"
SOURCE = {"form": "bench", "channel": "web"}
CHILD_TIMEOUT_S = 1800


class BenchError(RuntimeError):
    """The bench could not run (a child failed, the setup broke)."""


# --- the application ---------------------------------------------------------------------


@contextlib.contextmanager
def service_app(folder: Path, master_key: str, migrate: bool) -> Iterator[Flask]:
    """The service's app on ``folder/bench.db``, inside its app context.

    With ``migrate``, ``flask_migrate.upgrade()`` and then :func:`api.bootstrap` (the
    keyring and the purposes of the policy file), as a service start after
    ``privacy db upgrade`` would do.
    """
    from api import bootstrap, create_app
    from api.db import db

    config = {
        "INSTANCE_DIR": str(folder),
        "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "MASTER_KEY": master_key,
        "PUBLIC_URL": "http://bench",
    }
    with scoped_environ({}):  # no PRIVACY_* setting of the caller's shell leaks in
        app = create_app(config)
    with app.app_context():
        if migrate:
            from flask_migrate import upgrade

            logging.disable(logging.INFO)  # alembic's INFO lines about each migration
            try:
                upgrade()
            finally:
                logging.disable(logging.NOTSET)
            if not bootstrap(app):  # keyring and purposes, as a start on a migrated database does
                raise BenchError("the schema is missing after the migration")
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def timed_service(folder: Path) -> Any:
    """A ``RequestService`` on the app's session and context that times its stages.

    ``timings["run_local"]``, ``["complete_if_ready"]`` and ``["build_package"]`` get one
    duration (s) per call; ``verify`` calls the first two, the second calls the third.
    """
    from api.services import current
    from exports.store import PackageStore
    from privacy.requests.packages import PackageService
    from privacy.requests.service import RequestService
    from privacy.requests.workflow import WorkflowService

    timings: dict[str, list[float]] = defaultdict(list)

    class TimedPackages(PackageService):
        def build(self, *args: Any, **kwargs: Any) -> str:
            start = time.perf_counter()
            try:
                return super().build(*args, **kwargs)
            finally:
                timings["build_package"].append(time.perf_counter() - start)

    class TimedWorkflow(WorkflowService):
        def run_local(self, request_id: str, now: dt.datetime) -> str | None:
            start = time.perf_counter()
            try:
                return super().run_local(request_id, now)
            finally:
                timings["run_local"].append(time.perf_counter() - start)

        def complete_if_ready(self, request_id: str, now: dt.datetime) -> bool:
            start = time.perf_counter()
            try:
                return super().complete_if_ready(request_id, now)
            finally:
                timings["complete_if_ready"].append(time.perf_counter() - start)

    store = PackageStore(folder / "exports")
    svc = RequestService(current(), packager=store)
    svc.intake.workflow = TimedWorkflow(current(), store)
    svc.intake.workflow.packages = TimedPackages(current(), store)
    svc.timings = timings  # type: ignore[attr-defined]
    return svc


def consent_service() -> ConsentService:
    from api.services import current
    from privacy.consent.service import ConsentService

    return ConsentService(current())


def seed_subject(consents: ConsentService, email: str, events: int) -> str:
    """Sign ``email`` up, then flip purposes until it has at least ``events`` events; its id."""
    from privacy.consent.service import ConsentCommand
    from privacy.context import utcnow

    subject = {"email": email, "first_name": "Anna", "last_name": "Andersson", "country": "SE",
               "birth_date": "1990-04-01", "postal_code": "111 22", "phone": "+46701234567"}
    recorded = consents.record(ConsentCommand(purposes=dict(SIGNUP_PURPOSES), source=SOURCE, subject=subject,
                                              notice_version=NOTICE_VERSION), utcnow())
    subject_id: str = recorded.body["subject_id"]
    made, wish = len(SIGNUP_PURPOSES), False
    while made < events:
        consents.record(ConsentCommand(purposes=dict.fromkeys(FLIPPED, wish), source=SOURCE, subject_id=subject_id,
                                       notice_version=NOTICE_VERSION), utcnow())
        made, wish = made + len(FLIPPED), not wish
    return subject_id


def event_counts(subject_ids: Sequence[str]) -> dict[str, int]:
    """Consent events per subject, counted in the ledger."""
    from sqlalchemy import func, select

    from api.db import db
    from privacy.storage.models import ConsentEvent

    counts: dict[str, int] = dict.fromkeys(subject_ids, 0)
    wanted = set(subject_ids)
    rows = db.session.execute(select(ConsentEvent.subject_id, func.count()).group_by(ConsentEvent.subject_id))
    for subject_id, count in rows:
        if subject_id in wanted:
            counts[subject_id] = int(count)
    db.session.rollback()
    return counts


def open_with_token(svc: Any, type_: str, email: str) -> tuple[str, str]:
    """Open a request and give its verification row a token the bench knows; (id, token).

    The real token only travels in the mailed link, so the bench overwrites the stored
    hash of the request's ``verify`` token with the hash of its own.
    """
    from sqlalchemy import update

    from api.services import unit_of_work
    from privacy.context import utcnow
    from privacy.crypto.keys import token_hash
    from privacy.requests.service import RequestCommand
    from privacy.storage.models import RequestToken

    request_id: str = svc.open(RequestCommand(type=type_, email=email, language="sv"), utcnow())["id"]
    token = secrets.token_urlsafe(32)
    with unit_of_work() as session:
        changed = session.execute(update(RequestToken).where(
            RequestToken.request_id == request_id, RequestToken.purpose == "verify").values(
            token_hash=token_hash(token))).rowcount
    if changed != 1:
        raise BenchError(f"request {request_id} has {changed} verify tokens, expected 1")
    return request_id, token


# --- memory ------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``), MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    """This process's resident set size now (Linux ``/proc/self/statm``), MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


# --- children: one fresh process per phase and size ------------------------------------------


def child_seed(count: int, folder: Path, master_key: str) -> dict[str, Any]:
    """Migrate, seed ``count`` subjects and open one access request each (ids and tokens to a file)."""
    emails = [f"access-{i}@example.se" for i in range(count)]
    with service_app(folder, master_key, migrate=True):
        consents = consent_service()
        start = time.perf_counter()
        subject_ids = [seed_subject(consents, email, EVENTS_PER_SUBJECT) for email in emails]
        seed_s = time.perf_counter() - start
        counts = event_counts(subject_ids)
        svc = timed_service(folder)
        start = time.perf_counter()
        requests = [open_with_token(svc, "access", email) for email in emails]
        open_s = time.perf_counter() - start
    (folder / "requests.json").write_text(json.dumps(requests))
    return {"subjects": count, "seed_s": seed_s, "open_s": open_s, "events_min": min(counts.values()),
            "events_total": sum(counts.values()), "peak_rss_mib": peak_rss_mib()}


def child_package(folder: Path, master_key: str) -> dict[str, Any]:
    """Verify every opened request (timed); memory marks; then check the files and one package."""
    from privacy.context import utcnow

    requests: list[list[str]] = json.loads((folder / "requests.json").read_text())
    with service_app(folder, master_key, migrate=False):
        svc = timed_service(folder)
        gc.collect()
        marks = {"setup": (peak_rss_mib(), current_rss_mib())}
        seconds: list[float] = []
        not_completed: list[str] = []
        start = time.perf_counter()
        for request_id, token in requests:
            began = time.perf_counter()
            view = svc.verify(request_id, token, utcnow())
            seconds.append(time.perf_counter() - began)
            if view["status"] != "completed":
                not_completed.append(f"{request_id}: {view['status']}")
            if len(seconds) == 1:
                marks["first"] = (peak_rss_mib(), current_rss_mib())
        total_s = time.perf_counter() - start
        marks["end"] = (peak_rss_mib(), current_rss_mib())

        files = sorted((folder / "exports").glob("*.zip.sealed"))
        checked = requests[-1][0]
        name, chunks = svc.package_for_officer(checked, "bench", utcnow())
        data = b"".join(chunks)
        problems = [f"{len(not_completed)} request(s) not completed, first {not_completed[0]}"] if not_completed else []
        if len(files) != len(requests):
            problems.append(f"{len(files)} *.zip.sealed files for {len(requests)} requests")
        package: dict[str, Any] = {"request": checked, "name": name, "bytes": len(data)}
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                package["entries"] = zf.namelist()
                document = json.loads(zf.read("data.json"))
            package["history_events"] = len(document.get("consent_history") or [])
            package["fields"] = len((document.get("subject") or {}).get("fields") or [])
            if package["history_events"] < EVENTS_PER_SUBJECT:
                problems.append(f"data.json of {checked} holds {package['history_events']} history events")
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            problems.append(f"package of {checked} is not a zip with data.json: {exc!r}")
    return {
        "requests": len(requests),
        "total_s": total_s,
        "per_request_s": seconds,
        "timings_s": {k: statistics.median(v) for k, v in svc.timings.items() if v},
        "rss_mib": {k: {"peak": v[0], "current": v[1]} for k, v in marks.items()},
        "files": len(files),
        "package": package,
        "problems": problems,
    }


def run_child(phase: str, folder: Path, master_key: str, count: int = 0) -> dict[str, Any]:
    """``python -m bench.requests --child PHASE`` in a fresh process; its JSON answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")}
    env[MASTER_KEY_ENV] = master_key
    cmd = [sys.executable, "-m", "bench.requests", "--child", phase, "--count", str(count), "--dir", str(folder)]
    log = folder / f"{phase}.log"
    with log.open("w") as err:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                              timeout=CHILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd[1:])}` exited {proc.returncode}:\n{tail(log, 30)}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"`{' '.join(cmd[1:])}` printed no result:\n{proc.stdout[-2000:]}\n{tail(log, 30)}")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


# --- scenario 1: access packages ------------------------------------------------------------


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def run_access(sizes: Sequence[int], tmp: Path, faults: list[str]) -> dict[str, Any]:
    """Seed and package each size in fresh processes; print the table; the JSON result."""
    print(f"\n== access: one access request per subject ({EVENTS_PER_SUBJECT}+ consent events each), "
          "verify -> local work -> sealed package; fresh processes per size")
    rows: dict[int, dict[str, Any]] = {}
    for count in sizes:
        folder = tmp / f"access-{count}"
        folder.mkdir()
        master_key = generate_master_key()
        print(f"  {count:,} requests: seeding ...", end="", flush=True)
        seed = run_child("seed", folder, master_key, count)
        print(f" {seed['seed_s']:.1f} s ({seed['events_total'] / seed['seed_s']:,.0f} events/s); packaging ...",
              end="", flush=True)
        pack = run_child("package", folder, master_key)
        print(f" {pack['total_s']:.1f} s", flush=True)
        for problem in pack["problems"]:
            faults.append(f"access {count}: {problem}")
            print(f"\n!!! ERROR: access {count}: {problem}")
        rows[count] = {"seed": seed, "package": pack}

    print(f"  {'requests':>9}{'events/subj':>12}{'packages/s':>11}{'median ms':>10}{'p90 ms':>8}{'build ms':>9}"
          f"{'peak MiB':>9}{'setup MiB':>10}{'growth MiB':>11}{'after 1st':>10}{'files':>7}")
    for count, row in rows.items():
        pack, rss = row["package"], row["package"]["rss_mib"]
        per = sorted(pack["per_request_s"])
        p90 = per[min(len(per) - 1, int(0.9 * len(per)))]
        print(f"  {count:>9,}{row['seed']['events_min']:>12}{count / pack['total_s']:>11,.1f}"
              f"{_ms(statistics.median(per)):>10.1f}{_ms(p90):>8.1f}"
              f"{_ms(pack['timings_s'].get('build_package', 0.0)):>9.1f}{rss['end']['peak']:>9.1f}"
              f"{rss['setup']['peak']:>10.1f}{rss['end']['peak'] - rss['setup']['peak']:>11.1f}"
              f"{rss['end']['peak'] - rss['first']['peak']:>10.1f}{pack['files']:>7,}")
    small, large = min(rows), max(rows)
    peak_small = rows[small]["package"]["rss_mib"]["end"]["peak"]
    peak_large = rows[large]["package"]["rss_mib"]["end"]["peak"]
    ratio = peak_large / peak_small if peak_small else float("inf")
    passed = ratio <= RSS_TARGET
    print("  (peak = ru_maxrss of the package child at the end; setup = after app start; growth = peak - setup;"
          " after 1st = peak - peak after the first package; build = median of collect + zip + seal + fsync)")
    cur = {c: r["package"]["rss_mib"]["end"]["current"] for c, r in rows.items()}
    if all(v is not None for v in cur.values()):
        print("  current RSS at the end: " + ", ".join(f"{c:,} requests {v:.1f} MiB" for c, v in cur.items()))
    print(f"  peak RSS ratio {large:,}/{small:,} requests: {ratio:.2f} (target <= {RSS_TARGET:.2f})  "
          f"{'PASS' if passed else 'FAIL'}")
    pkg = rows[large]["package"]["package"]
    print(f"  package check: {rows[large]['package']['files']:,} *.zip.sealed files for {large:,} requests; "
          f"officer download {pkg['name']}: {pkg['bytes']:,} bytes, entries {', '.join(pkg.get('entries', []))}; "
          f"data.json consent_history {pkg.get('history_events', '-')} events, {pkg.get('fields', '-')} fields")
    return {
        "what": f"verify + package of access requests, one per subject with >= {EVENTS_PER_SUBJECT} consent events",
        "sizes": {
            str(count): {
                "seed_s": round(row["seed"]["seed_s"], 3),
                "open_s": round(row["seed"]["open_s"], 3),
                "seed_peak_rss_mib": round(row["seed"]["peak_rss_mib"], 1),
                "events_per_subject_min": row["seed"]["events_min"],
                "package_s": round(row["package"]["total_s"], 3),
                "packages_per_s": round(count / row["package"]["total_s"], 1),
                "median_ms": round(_ms(statistics.median(row["package"]["per_request_s"])), 2),
                "stage_median_ms": {k: round(_ms(v), 2) for k, v in row["package"]["timings_s"].items()},
                "rss_mib": {k: {kk: (round(vv, 1) if vv is not None else None) for kk, vv in v.items()}
                            for k, v in row["package"]["rss_mib"].items()},
                "files": row["package"]["files"],
                "package": row["package"]["package"],
                "problems": row["package"]["problems"],
            }
            for count, row in rows.items()
        },
        "peak_rss_ratio": round(ratio, 3),
        "target": f"peak RSS {large} / {small} <= {RSS_TARGET}",
        "pass": passed,
    }


# --- scenario 2: erasure -----------------------------------------------------------------------


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included) with the backup API."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _baseline_delete(path: Path, subject_id: str) -> tuple[float, dict[str, int]]:
    """Delete the rows the erasure deletes with plain SQL in one transaction; (seconds, rowcounts)."""
    from privacy.storage.sqlite import apply_sqlite_pragmas

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        apply_sqlite_pragmas(conn)
        tables = ("subject_fields", "consent_states")
        for table in tables:  # warm the page cache, as the service's pooled connection is
            conn.execute(f"SELECT * FROM {table} WHERE subject_id = ?", (subject_id,)).fetchall()
        conn.execute("SELECT * FROM subjects WHERE id = ?", (subject_id,)).fetchall()
        start = time.perf_counter()
        conn.execute("BEGIN")
        counts = {table: conn.execute(f"DELETE FROM {table} WHERE subject_id = ?", (subject_id,)).rowcount
                  for table in tables}
        counts["subjects"] = conn.execute("DELETE FROM subjects WHERE id = ?", (subject_id,)).rowcount
        conn.execute("COMMIT")
        return time.perf_counter() - start, counts
    finally:
        conn.close()


def _erasure_round(folder: Path, number: int, faults: list[str]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from api.db import db
    from privacy.context import utcnow
    from privacy.storage.models import ConsentEvent, ConsentState, Subject, SubjectField, Suppression

    email = f"erase-{number}@example.se"
    start = time.perf_counter()
    subject_id = seed_subject(consent_service(), email, ERASURE_EVENTS)
    seed_s = time.perf_counter() - start
    events = event_counts([subject_id])[subject_id]
    session = db.session()
    fields = session.scalar(select(func.count()).select_from(SubjectField).where(SubjectField.subject_id == subject_id))
    svc = timed_service(folder)
    request_id, token = open_with_token(svc, "erasure", email)
    session.rollback()
    copy = folder / f"baseline-{number}.db"
    _copy_database(folder / "bench.db", copy)

    start = time.perf_counter()
    view = svc.verify(request_id, token, utcnow())
    verify_s = time.perf_counter() - start
    if view["status"] != "completed":
        faults.append(f"erasure round {number}: the request is {view['status']}, not completed")
    left = {
        "subjects": session.scalar(select(func.count()).select_from(Subject).where(Subject.id == subject_id)),
        "subject_fields": session.scalar(select(func.count()).select_from(SubjectField)
                                         .where(SubjectField.subject_id == subject_id)),
        "consent_states": session.scalar(select(func.count()).select_from(ConsentState)
                                         .where(ConsentState.subject_id == subject_id)),
    }
    kept = session.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.subject_id == subject_id))
    suppressed = session.scalar(select(func.count()).select_from(Suppression)
                                .where(Suppression.subject_id == subject_id))
    session.rollback()
    if any(left.values()):
        faults.append(f"erasure round {number}: rows left behind {left}")
    if not suppressed:
        faults.append(f"erasure round {number}: no suppression entry")

    baseline_s, deleted = _baseline_delete(copy, subject_id)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return {
        "events": events,
        "fields": fields,
        "seed_s": seed_s,
        "verify_s": verify_s,
        "run_local_s": svc.timings["run_local"][-1],
        "complete_s": svc.timings["complete_if_ready"][-1],
        "baseline_s": baseline_s,
        "baseline_deleted": deleted,
        "events_kept": kept,
    }


def run_erasure(rounds: int, tmp: Path, faults: list[str]) -> dict[str, Any]:
    """Erase a fresh subject with 1,000+ events per round; print the table; the JSON result."""
    print(f"\n== erasure: verify of an erasure request for a subject with {ERASURE_EVENTS:,}+ consent events "
          f"vs plain SQL deleting the same rows on a copy ({rounds} round(s), a fresh subject each)")
    folder = tmp / "erasure"
    folder.mkdir()
    master_key = generate_master_key()
    results: list[dict[str, Any]] = []
    with service_app(folder, master_key, migrate=True):
        for number in range(rounds):
            results.append(_erasure_round(folder, number, faults))
            r = results[-1]
            print(f"  round {number + 1}: {r['events']:,} events (seeded in {r['seed_s']:.1f} s), verify "
                  f"{_ms(r['verify_s']):.1f} ms, run_local {_ms(r['run_local_s']):.1f} ms, baseline "
                  f"{_ms(r['baseline_s']):.2f} ms", flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"  {'':<46}{'median ms':>10}{'min ms':>9}{'max ms':>9}")
    for label, key in (
        ("service: verify (the whole click)", "verify_s"),
        ("  of which run_local (the erasure itself)", "run_local_s"),
        ("  of which complete_if_ready (completion mail)", "complete_s"),
        ("baseline: 3 DELETEs + COMMIT, plain sqlite3", "baseline_s"),
    ):
        values = [r[key] for r in results]
        print(f"  {label:<46}{_ms(med(key)):>10.2f}{_ms(min(values)):>9.2f}{_ms(max(values)):>9.2f}")
    ratio = med("verify_s") / med("baseline_s") if med("baseline_s") else float("inf")
    passed = _ms(med("verify_s")) < ERASURE_TARGET_MS
    deleted = results[-1]["baseline_deleted"]
    print(f"  ratio service verify / baseline: {ratio:,.1f}x (for context)")
    print(f"  target: verify median < {ERASURE_TARGET_MS:.0f} ms  {'PASS' if passed else 'FAIL'}"
          f"  (run_local alone: {_ms(med('run_local_s')):.1f} ms)")
    print(f"  note: both sides delete subject_fields ({deleted['subject_fields']}), consent_states "
          f"({deleted['consent_states']}) and the subjects row (cascading to confirmations and queued mail); "
          f"neither deletes consent_events: the ledger keeps the subject's {results[-1]['events_kept']:,} "
          "pseudonymous events (its own plus the erasure's withdrawals) as proof")
    return {
        "what": f"verify of an erasure request, subject with >= {ERASURE_EVENTS} consent events",
        "rounds": len(results),
        "events": [r["events"] for r in results],
        "service": {
            "verify_median_ms": round(_ms(med("verify_s")), 3),
            "run_local_median_ms": round(_ms(med("run_local_s")), 3),
            "complete_if_ready_median_ms": round(_ms(med("complete_s")), 3),
            "verify_runs_ms": [round(_ms(r["verify_s"]), 3) for r in results],
            "run_local_runs_ms": [round(_ms(r["run_local_s"]), 3) for r in results],
        },
        "baseline": {
            "median_ms": round(_ms(med("baseline_s")), 3),
            "runs_ms": [round(_ms(r["baseline_s"]), 3) for r in results],
            "deleted": deleted,
            "sql": "DELETE FROM subject_fields / consent_states WHERE subject_id=?; DELETE FROM subjects WHERE id=?",
        },
        "events_kept": [r["events_kept"] for r in results],
        "ratio": round(ratio, 2),
        "target": f"verify median < {ERASURE_TARGET_MS} ms",
        "pass": passed,
    }


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.requests",
        description="Benchmark data-subject requests (access packages, erasure) in-process.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 and 100 requests, 2 erasure rounds")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated request counts for the access scenario (default 10,1000; quick 10,100)")
    parser.add_argument("--rounds", type=int, default=None, help="erasure rounds, median reported (default 5, quick 2)")
    parser.add_argument("--only", default="access,erasure", help="comma-separated scenarios: access, erasure")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases, packages, logs)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    parser.add_argument("--child", choices=("seed", "package"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = args.sizes or ",".join(str(n) for n in (QUICK_SIZES if args.quick else SIZES))
    try:
        args.sizes = sorted({int(n) for n in sizes.split(",") if n.strip()})
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    if len(args.sizes) < 2 or args.sizes[0] < 1:
        parser.error("--sizes needs two or more positive counts")
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if not args.only or set(args.only) - {"access", "erasure"}:
        parser.error("--only takes access and/or erasure")
    if args.child and args.dir is None:
        parser.error("--child needs --dir")
    return args


def child_main(args: argparse.Namespace) -> int:
    """One phase of the access scenario in this (fresh) process; prints one JSON line."""
    master_key = os.environ.get(MASTER_KEY_ENV)
    if not master_key:
        print(f"{MASTER_KEY_ENV} is not set", file=sys.stderr)
        return 2
    if args.child == "seed":
        answer = child_seed(args.count, args.dir, master_key)
    else:
        answer = child_package(args.dir, master_key)
    print(json.dumps(answer))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the process exit status (see the module docstring)."""
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    machine = start()
    print(f"in-process, SQLite in a fresh temporary folder; access sizes {', '.join(f'{n:,}' for n in args.sizes)}; "
          f"erasure rounds {args.rounds}; scenarios {', '.join(args.only)}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="privacy-bench-requests-"))
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": {"quick": args.quick, "sizes": args.sizes, "erasure_rounds": args.rounds,
                     "events_per_subject": EVENTS_PER_SUBJECT, "erasure_events": ERASURE_EVENTS},
        "scenarios": {},
    }
    faults: list[str] = []
    status = 0
    try:
        if "access" in args.only:
            report["scenarios"]["access"] = run_access(args.sizes, tmp, faults)
        if "erasure" in args.only:
            report["scenarios"]["erasure"] = run_erasure(args.rounds, tmp, faults)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"\n!!! bench could not run: {exc}", file=sys.stderr)
        report["fatal"] = f"{type(exc).__name__}: {exc}"
        status = 2
    finally:
        report["service_errors"] = faults
        if faults:
            status = status or 1
        finish(report, machine, args.output, tmp, args.keep, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
