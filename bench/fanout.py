"""``python -m bench.fanout``: the fan-out to connected systems, against baselines of the same run.

The connected systems are fakes (:class:`FakeSystems`): webhook endpoints in a process of
their own (asyncio, keep-alive) that answer ``{"ok": true}`` after a set delay and count
what they were sent, so the systems cost the measured processes no CPU of their own.

1. ``latency``: one verified erasure fanned out to 6 systems that answer after 200 ms,
   run by ``TaskRunner.drain()``; from the first claim (the earliest ``task_attempts.
   started_at`` of its tasks) to the request's ``completed_at``. Baseline: the same
   6 connectors called one after another on the tasks of another erasure (~1.2 s).
   Median of ``--rounds``. Target: < 0.6 s.
2. ``claim`` (:func:`bench.fanout_load.run_claim`): the runner in the background
   (``runner.start()``, default poll 0.5 s) while erasures are verified at random moments;
   from ``request_tasks.created_at`` (taken just before the planning transaction commits)
   to the first attempt's ``started_at``.
   Median and worst. Target: worst < 2 s.
3. ``drain`` and 4. ``withdrawal``: :mod:`bench.fanout_load` (with scenario 2's code).

Scenarios 1, 2 and 4 run on SQLite, 3 on PostgreSQL (and SQLite with one process).
Prints one table per scenario and a summary, and writes ``bench/results/fanout.json``.
Exit status: 0 when everything ran (a missed target is reported, not an error); 1 when
the service misbehaved (a request not completed, a task run twice); 2 when the bench
could not run.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.report import finish, start

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "fanout.json"
SECRET_ENV = "BENCH_FANOUT_WEBHOOK_SECRET"
SYSTEMS = 6
LATENCY_TARGET_S = 0.6
CLAIM_TARGET_S = 2.0
NOTICE = "2026-11-01"
SOURCE = {"form": "bench", "channel": "web"}


# --- the connected systems ----------------------------------------------------------------


def _serve(count: int, delay_s: float, conn: Any) -> None:
    """The fakes' process: ``count`` HTTP servers on free ports sharing one tally."""
    tally: dict[str, Any] = {"posts": 0, "keys": set(), "duplicates": 0, "now": 0, "peak": 0}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while line := await reader.readline():
                method = line.split(b" ", 1)[0]
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", 0)))
                body = b'{"ok":true}'
                if method == b"POST":
                    key = headers.get("idempotency-key", "")
                    tally["posts"] += 1
                    tally["duplicates"] += key in tally["keys"]
                    tally["keys"].add(key)
                    tally["now"] += 1
                    tally["peak"] = max(tally["peak"], tally["now"])
                    await asyncio.sleep(delay_s)
                    tally["now"] -= 1
                else:
                    body = json.dumps({k: v for k, v in tally.items() if k != "keys"}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(answer, "127.0.0.1", 0, backlog=512) for _ in range(count)]
        conn.send([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.Event().wait()

    asyncio.run(main())


class FakeSystems:
    """``count`` webhook endpoints answering after ``delay_s``, in a process of their own."""

    def __init__(self, count: int, delay_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(count, delay_s, child), daemon=True)
        self.process.start()
        if not parent.poll(30):
            raise RuntimeError("the fake systems did not start")
        self.urls = [f"http://127.0.0.1:{port}/privacy" for port in parent.recv()]

    def stats(self) -> dict[str, int]:
        """POSTs answered, repeated ``Idempotency-Key`` values, most answers pending at once."""
        with urllib.request.urlopen(self.urls[0], timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def close(self) -> None:
        self.process.terminate()
        self.process.join(10)


# --- the application ----------------------------------------------------------------------


def webhooks(urls: Sequence[str], operations: Sequence[str] = ("erasure",), max_in_flight: int = 4
             ) -> list[dict[str, Any]]:
    """Policy entries for webhook systems at ``urls``."""
    return [{"name": f"system-{n}", "type": "webhook", "url": url, "secret_env": SECRET_ENV,
             "operations": list(operations), "timeout_s": 10, "max_in_flight": max_in_flight,
             "retry": {"initial_delay_s": 10, "max_delay_s": 60, "deadline_hours": 1}}
            for n, url in enumerate(urls, 1)]


def app_config(folder: Path, url: str, connectors: list[dict[str, Any]], master_key: str) -> dict[str, Any]:
    """The app's settings: the default policy with ``connectors``, written to ``folder``."""
    from privacy.policy.file import DEFAULT_POLICY_FILE

    folder.mkdir(parents=True, exist_ok=True)
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    policy["connectors"] = connectors
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True))
    return {"INSTANCE_DIR": str(folder), "DATABASE_URL": url, "MASTER_KEY": master_key,
            "PUBLIC_URL": "http://bench", "POLICY_FILE": str(path)}


def reset_database(url: str) -> None:
    """An empty PostgreSQL schema (SQLite files are fresh already)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@contextlib.contextmanager
def bench_app(config: dict[str, Any], migrate: bool) -> Iterator[Any]:
    """The service's app on ``config``, inside its app context (migrated and bootstrapped
    as ``privacy db upgrade`` and a start would, with ``migrate``)."""
    import logging

    from api import bootstrap, create_app
    from api.db import db
    from bench.bulk import scoped_environ

    os.environ.setdefault(SECRET_ENV, "bench-webhook-secret")
    if migrate:  # before the app boots: it checks its master key against the database's keyring
        reset_database(config["DATABASE_URL"])
    with scoped_environ({}):
        app = create_app(config)
    with app.app_context():
        if migrate:
            from flask_migrate import upgrade

            logging.disable(logging.INFO)
            try:
                upgrade()
            finally:
                logging.disable(logging.NOTSET)
            bootstrap(app)
        gc.collect()
        gc.freeze()  # as wsgi.py does after the start: full collections skip what the start built
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def sign_up(email: str) -> str:
    """A subject with the sign-up's purposes, through the consent service; its id."""
    from api.services import consent_service
    from privacy.consent.service import ConsentCommand
    from privacy.context import utcnow

    subject = {"email": email, "first_name": "Anna", "country": "SE", "birth_date": "1990-04-01"}
    purposes = {"loyalty_club": True, "marketing_email": True, "profiling": False}
    result = consent_service().record(ConsentCommand(purposes=purposes, source=SOURCE, subject=subject,
                                                     notice_version=NOTICE), utcnow())
    return str(result.body["subject_id"])


def open_erasure(email: str) -> tuple[str, str]:
    """An erasure request opened through the service, with a verify token the bench knows."""
    from api.services import request_service
    from bench.requests import open_with_token

    return open_with_token(request_service(), "erasure", email)


def verify(request_id: str, token: str) -> None:
    """The customer's click: plans the tasks and runs this service's own share."""
    from api.services import request_service
    from privacy.context import utcnow

    request_service().verify(request_id, token, utcnow())


def query(sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` on the app's database, read in a transaction of their own."""
    from sqlalchemy import text

    from api.services import current

    with current().database.unit_of_work() as session:
        return list(session.execute(text(sql), params))


def seconds(value: Any) -> float:
    """A timestamp column (datetime, or SQLite's text) as epoch seconds."""
    import datetime as dt

    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


# --- scenario 1: one erasure, six systems ---------------------------------------------------


def planned_calls(request_id: str, connectors: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(connector, call) for each connected system's task of the request, as the runner opens them."""
    from api.services import current
    from privacy.storage.repositories.tasks import TaskRepository
    from privacy.tasks.planning import open_call

    with current().database.unit_of_work() as session:
        tasks = [t for t in TaskRepository(session).of_request(request_id) if t.system in connectors]
        return [(connectors[t.system], open_call(current().crypto, t)) for t in tasks]


def _latency_round(app: Any, number: int) -> dict[str, float]:
    """One parallel erasure (runner) and one sequential baseline (the connectors, in turn)."""
    from retention.scheduler import build_runner

    runner = build_runner(app, lease_s=30)
    email = f"latency-{number}@example.se"
    # The baseline: an erasure's tasks, each connector called in turn on this thread; the
    # runner then clears them (untimed), which also warms its connections as the baseline's are.
    sign_up(f"seq-{email}")
    seq_id, seq_token = open_erasure(f"seq-{email}")
    verify(seq_id, seq_token)
    calls = planned_calls(seq_id, runner.connectors)
    began = time.perf_counter()
    for connector, call in calls:
        connector.run(call)
    sequential = time.perf_counter() - began
    runner.drain()
    sign_up(email)
    request_id, token = open_erasure(email)
    verify(request_id, token)
    runner.drain()
    first = query("SELECT min(a.started_at) FROM task_attempts a JOIN request_tasks t ON t.id = a.task_id "
                  "WHERE t.request_id = :r", r=request_id)[0][0]
    done = query("SELECT completed_at, status FROM requests WHERE id = :r", r=request_id)[0]
    runner.pool.shutdown()
    return {"parallel_s": seconds(done[0]) - seconds(first), "sequential_s": sequential,
            "completed": float(done[1] == "completed"), "systems": float(len(calls))}


def run_latency(tmp: Path, rounds: int, faults: list[str]) -> dict[str, Any]:
    """Scenario 1 on SQLite; prints its table; the JSON result."""
    from privacy.crypto.keys import generate_master_key

    print(f"\n== latency: one erasure to {SYSTEMS} webhook systems answering after 200 ms, "
          f"first claim -> completed_at, vs the same connectors called in turn ({rounds} rounds)")
    fakes = FakeSystems(SYSTEMS, 0.2)
    try:
        config = app_config(tmp / "latency", f"sqlite:///{tmp / 'latency' / 'bench.db'}",
                            webhooks(fakes.urls), generate_master_key())
        with bench_app(config, migrate=True) as app:
            results = [_latency_round(app, n) for n in range(rounds)]
    finally:
        fakes.close()
    for n, r in enumerate(results, 1):
        print(f"  round {n}: parallel {r['parallel_s']:.3f} s, sequential {r['sequential_s']:.3f} s")
        if not r["completed"] or r["systems"] != SYSTEMS:
            faults.append(f"latency round {n}: completed={r['completed']}, {r['systems']} systems called")
    parallel = statistics.median(r["parallel_s"] for r in results)
    sequential = statistics.median(r["sequential_s"] for r in results)
    print(f"  median: parallel {parallel:.3f} s, sequential {sequential:.3f} s, ratio {parallel / sequential:.2f}; "
          f"target parallel < {LATENCY_TARGET_S} s  {'PASS' if parallel < LATENCY_TARGET_S else 'FAIL'}")
    return {"parallel_s": [round(r["parallel_s"], 4) for r in results], "parallel_median_s": round(parallel, 4),
            "sequential_s": [round(r["sequential_s"], 4) for r in results],
            "sequential_median_s": round(sequential, 4), "ratio": round(parallel / sequential, 3),
            "pass": parallel < LATENCY_TARGET_S}


# --- the run ---------------------------------------------------------------------------------


def summary(report: dict[str, Any]) -> None:
    """The closing table: one line per measure, with its baseline and ratio where there is one."""
    s = report["scenarios"]
    rows: list[tuple[str, str, str, str]] = []
    if "latency" in s:
        r = s["latency"]
        rows.append(("erasure to 6 systems (200 ms)", f"{r['parallel_median_s']:.3f} s",
                     f"{r['sequential_median_s']:.3f} s in turn", f"{r['ratio']:.2f}"))
    if "claim" in s:
        r = s["claim"]
        rows.append(("commit -> claim", f"median {r['median_s']:.3f} s, worst {r['worst_s']:.3f} s", "", ""))
    for row in s.get("drain", {}).get("rows", []):
        rows.append((row["label"], f"{row['rate']:,.0f} tasks/s", row.get("baseline", ""), row.get("ratio", "")))
    for row in s.get("withdrawal", {}).get("rows", []):
        rows.append((row["label"], f"{row['rate']:,.0f} req/s", row["baseline"], row["ratio"]))
    print(f"\n== summary\n  {'measure':<44}{'service':<34}{'baseline':<26}{'ratio':>6}")
    for label, value, baseline, ratio in rows:
        print(f"  {label:<44}{value:<34}{baseline:<26}{ratio:>6}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="latency,claim,drain,withdrawal", help="comma-separated scenarios")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (median reported)")
    parser.add_argument("--claims", type=int, default=30, help="erasures verified in the claim scenario")
    parser.add_argument("--requests", type=int, default=1000, help="erasures drained (x 6 tasks)")
    parser.add_argument("--signups", type=int, default=400, help="sign-ups (and withdrawals) per round")
    parser.add_argument("--no-postgres", action="store_true", help="drain on SQLite only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if set(args.only) - {"latency", "claim", "drain", "withdrawal"}:
        parser.error("--only takes latency, claim, drain, withdrawal")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios; the exit status (see the module docstring)."""
    from bench import fanout_load

    args = parse_args(argv)
    machine = start()
    tmp = Path(tempfile.mkdtemp(prefix="privacy-bench-fanout-"))
    report: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine,
                              "settings": {k: v for k, v in vars(args).items() if k != "output"}, "scenarios": {}}
    faults: list[str] = []
    status = 0
    runs = {"latency": lambda: run_latency(tmp, args.rounds, faults),
            "claim": lambda: fanout_load.run_claim(tmp, args.claims, faults),
            "drain": lambda: fanout_load.run_drain(tmp, args.requests, not args.no_postgres, faults),
            "withdrawal": lambda: fanout_load.run_withdrawal(tmp, args.signups, faults)}
    try:
        for name in args.only:
            report["scenarios"][name] = runs[name]()
        summary(report)
    except (RuntimeError, OSError) as exc:
        print(f"\n!!! bench could not run: {exc}", file=sys.stderr)
        report["fatal"] = f"{type(exc).__name__}: {exc}"
        status = 2
    finally:
        report["service_errors"] = faults
        for fault in faults:
            print(f"!!! {fault}")
        status = status or (1 if faults else 0)
        report["settings"]["output"] = str(args.output)
        finish(report, machine, args.output, tmp, args.keep, status)
    return status


if __name__ == "__main__":
    # Run as bench.fanout, not __main__, so the fakes' and schedulers' processes find their code.
    sys.exit(importlib.import_module("bench.fanout").main())
