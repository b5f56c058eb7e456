"""The load scenarios of ``python -m bench.fanout`` (see :mod:`bench.fanout`).

3. ``drain``: ``--requests`` verified erasures (x 6 systems, 50 ms answers,
   ``max_in_flight`` 16 each) drained by scheduler processes: separate processes
   (multiprocessing, spawn), each one ``TaskRunner`` as ``privacy scheduler`` builds it
   (``build_runner(app)``, default poll and lease), started together once the tasks are
   planned. Tasks per second from the first attempt's start to the last attempt's end
   (``task_attempts``). SQLite with one process; PostgreSQL (``PRIVACY_BENCH_DATABASE_URL``,
   or a throwaway server from ``.ci/postgres.sh``) with one and with two, and their ratio.
   Checks: one ``succeeded`` attempt per task, no task with two overlapping attempts, no
   ``Idempotency-Key`` seen twice by the systems, every request completed.
4. ``withdrawal``: sign-ups/s and withdrawals/s (``POST /v1/consents``, in-process through
   the Flask test client) with a policy with no connectors and with 6 webhook connectors
   taking ``consent``, alternating for 3 rounds; medians and the ratio (connectors / none).
"""
from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import random
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.fanout import (
    CLAIM_TARGET_S,
    NOTICE,
    SOURCE,
    SYSTEMS,
    FakeSystems,
    app_config,
    bench_app,
    open_erasure,
    query,
    seconds,
    sign_up,
    verify,
    webhooks,
)
from bench.servers import REPO_ROOT

DRAIN_IN_FLIGHT = 16
DRAIN_TIMEOUT_S = 900.0
LOCAL = "privacy-service"
WITHDRAWAL_ROUNDS = 3


# --- scenario 2: commit -> claim ------------------------------------------------------------


def run_claim(tmp: Path, requests: int, faults: list[str]) -> dict[str, Any]:
    """Scenario 2 on SQLite: erasures verified at random moments (0-1 s apart) while the
    runner polls in the background; prints its table; the JSON result."""
    from privacy.crypto.keys import generate_master_key
    from retention.scheduler import build_runner

    print(f"\n== claim: {requests} erasures to {SYSTEMS} systems (50 ms answers) verified 0-1 s apart, "
          "the runner in the background (runner.start(), default poll); request_tasks.created_at -> claim")
    fakes = FakeSystems(SYSTEMS, 0.05)
    rng = random.Random(20261202)
    try:
        config = app_config(tmp / "claim", f"sqlite:///{tmp / 'claim' / 'bench.db'}",
                            webhooks(fakes.urls), generate_master_key())
        with bench_app(config, migrate=True) as app:
            emails = [f"claim-{n}@example.se" for n in range(requests)]
            opened = [(sign_up(e), open_erasure(e))[1] for e in emails]
            runner = build_runner(app)
            thread = runner.start()
            for request_id, token in opened:
                time.sleep(rng.uniform(0.0, 1.0))
                verify(request_id, token)
            time.sleep(2.0)
            runner.stop()
            thread.join(30)
            rows = query("SELECT t.created_at, min(a.started_at), count(a.id) FROM request_tasks t "
                         "LEFT JOIN task_attempts a ON a.task_id = t.id WHERE t.system != 'privacy-service' "
                         "GROUP BY t.id, t.created_at")
    finally:
        fakes.close()
    unclaimed = sum(1 for row in rows if row[1] is None)
    if unclaimed:
        faults.append(f"claim: {unclaimed} task(s) never claimed")
    delays = sorted(seconds(row[1]) - seconds(row[0]) for row in rows if row[1] is not None)
    median, worst = statistics.median(delays), max(delays)
    passed = worst < CLAIM_TARGET_S
    print(f"  {len(delays)} tasks: commit -> claim median {median:.3f} s, p90 {delays[int(0.9 * len(delays))]:.3f} s, "
          f"worst {worst:.3f} s; target worst < {CLAIM_TARGET_S} s  {'PASS' if passed else 'FAIL'}")
    return {"tasks": len(delays), "median_s": round(median, 4), "worst_s": round(worst, 4),
            "p90_s": round(delays[int(0.9 * len(delays))], 4), "unclaimed": unclaimed, "pass": passed}


# --- PostgreSQL --------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str | None, str]]:
    """(URL, where from) of a PostgreSQL database to use, or (None, why not)."""
    url = os.environ.get("PRIVACY_BENCH_DATABASE_URL")
    if url:
        yield url, "PRIVACY_BENCH_DATABASE_URL"
        return
    try:
        started = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "postgres.sh"), "start"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        yield None, f".ci/postgres.sh could not run: {exc}"
        return
    env = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
               if line.startswith("export "))
    env = {k: v.strip("'") for k, v in env.items()}
    if started.returncode != 0 or "PRIVACY_TEST_DATABASE_URL" not in env:
        yield None, f".ci/postgres.sh start failed: {started.stderr.strip().splitlines()[-1:]}"
        return
    try:
        yield env["PRIVACY_TEST_DATABASE_URL"], f"throwaway server (.ci/postgres.sh) in {env['PRIVACY_CI_PG_DIR']}"
    finally:
        subprocess.run(["bash", str(REPO_ROOT / ".ci" / "postgres.sh"), "stop", env["PRIVACY_CI_PG_DIR"]],
                       cwd=REPO_ROOT, capture_output=True, timeout=120, check=False)


# --- the scheduler processes -------------------------------------------------------------------


def _scheduler(config: dict[str, Any], barrier: Any, stop: Any, results: Any) -> None:
    """One scheduler process: the runner ``privacy scheduler`` runs, from the barrier until ``stop``;
    reports how many calls it made."""
    from retention.scheduler import build_runner

    with bench_app(config, migrate=False) as app:
        runner = build_runner(app)
        made: Counter[str] = Counter()
        lock = threading.Lock()
        for connector in runner.connectors.values():
            connector.run = _counted(connector.run, made, lock)  # type: ignore[method-assign]
        barrier.wait()
        thread = runner.start()
        stop.wait()
        runner.stop()
        thread.join(60)
        results.put({"pid": os.getpid(), "calls": sum(made.values())})


def _counted(run: Callable[[Any], Any], made: Counter[str], lock: threading.Lock) -> Callable[[Any], Any]:
    def counted(call: Any) -> Any:
        with lock:
            made["calls"] += 1
        return run(call)
    return counted


def seed(config: dict[str, Any], count: int) -> float:
    """``count`` signed-up subjects, each with a verified erasure (tasks planned, none run); seconds."""
    began = time.perf_counter()
    with bench_app(config, migrate=True):
        for n in range(count):
            email = f"drain-{n}@example.se"
            sign_up(email)
            verify(*open_erasure(email))
    return time.perf_counter() - began


def drain(config: dict[str, Any], processes: int) -> dict[str, Any]:
    """Start ``processes`` schedulers together, wait until no task is left, stop them."""
    context = multiprocessing.get_context("spawn")
    barrier, stop, results = context.Barrier(processes + 1), context.Event(), context.Queue()
    children = [context.Process(target=_scheduler, args=(config, barrier, stop, results)) for _ in range(processes)]
    for child in children:
        child.start()
    with bench_app(config, migrate=False):
        barrier.wait(120)
        began, until = time.time(), time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < until and query(
                "SELECT count(*) FROM request_tasks WHERE system != :l AND status IN ('pending', 'in_progress')",
                l=LOCAL)[0][0]:
            time.sleep(0.2)
        wall = time.time() - began
        stop.set()
        per_process = [results.get(timeout=120) for _ in children]
        for child in children:
            child.join(60)
        return {"wall_s": wall, "per_process": per_process, **_checks()}


def _checks() -> dict[str, Any]:
    """The attempts' span and the once-only checks, read from the database."""
    attempts = query("SELECT task_id, started_at, duration_ms, result FROM task_attempts")
    spans: dict[str, list[tuple[float, float]]] = {}
    for task_id, started, duration, _ in attempts:
        at = seconds(started)
        spans.setdefault(task_id, []).append((at, at + duration / 1000))
    overlapping = sum(1 for s in spans.values() if any(b[0] < a[1] for a, b in itertools.pairwise(sorted(s))))
    succeeded = Counter(t for t, _, _, result in attempts if result == "succeeded")
    tasks = [r[0] for r in query("SELECT id FROM request_tasks WHERE system != :l", l=LOCAL)]
    first = min(s[0] for v in spans.values() for s in v)
    last = max(s[1] for v in spans.values() for s in v)
    return {"tasks": len(tasks), "attempts": len(attempts), "span_s": last - first,
            "not_once": sum(1 for t in tasks if succeeded[t] != 1), "overlapping": overlapping,
            "requests": dict(query("SELECT status, count(*) FROM requests GROUP BY status")),
            "median_call_ms": statistics.median(d for _, _, d, _ in attempts)}


def _drain_row(tmp: Path, url: str, label: str, processes: int, requests: int, urls: list[str],
               faults: list[str]) -> dict[str, Any]:
    from privacy.crypto.keys import generate_master_key

    config = app_config(tmp / label.replace(" ", "-"), url, webhooks(urls, max_in_flight=DRAIN_IN_FLIGHT),
                        generate_master_key())
    seeded = seed(config, requests)
    result = drain(config, processes)
    rate = result["tasks"] / result["span_s"]
    shares = ", ".join(f"{p['calls'] / result['span_s']:,.0f}" for p in result["per_process"])
    print(f"  {label}: {result['tasks']:,} tasks in {result['span_s']:.1f} s = {rate:,.0f} tasks/s "
          f"(per process {shares}; wall {result['wall_s']:.1f} s; median call {result['median_call_ms']:.0f} ms; "
          f"seeded in {seeded:.0f} s); attempts {result['attempts']:,}, not exactly once {result['not_once']}, "
          f"overlapping {result['overlapping']}, requests {result['requests']}", flush=True)
    if result["not_once"] or result["overlapping"] or result["attempts"] != result["tasks"]:
        faults.append(f"drain {label}: {result['not_once']} task(s) not succeeded exactly once, "
                      f"{result['overlapping']} overlapping, {result['attempts']} attempts for {result['tasks']} tasks")
    if result["requests"].get("completed", 0) != requests:
        faults.append(f"drain {label}: requests {result['requests']}, expected {requests} completed")
    return {"label": f"drain, {label}", "rate": round(rate, 1), "seed_s": round(seeded, 1), **result}


def run_drain(tmp: Path, requests: int, use_postgres: bool, faults: list[str]) -> dict[str, Any]:
    """Scenario 3: SQLite with one process, PostgreSQL with one and two; the JSON result."""
    print(f"\n== drain: {requests:,} erasures x {SYSTEMS} systems (50 ms answers, max_in_flight "
          f"{DRAIN_IN_FLIGHT}), scheduler processes started together (build_runner(app): default poll, lease)")
    fakes = FakeSystems(SYSTEMS, 0.05)
    rows: list[dict[str, Any]] = []
    try:
        rows.append(_drain_row(tmp, f"sqlite:///{tmp / 'drain-sqlite.db'}", "SQLite 1 process", 1, requests,
                               fakes.urls, faults))
        with postgres() if use_postgres else contextlib.nullcontext((None, "--no-postgres")) as (url, source):
            if url is None:
                print(f"  PostgreSQL: skipped ({source}); SQLite supports one scheduler process")
            else:
                print(f"  PostgreSQL: {source}")
                for processes in (1, 2):
                    rows.append(_drain_row(tmp, url, f"PostgreSQL {processes} process{'es' * (processes > 1)}",
                                           processes, requests, fakes.urls, faults))
        stats = fakes.stats()
    finally:
        fakes.close()
    if stats["duplicates"]:
        faults.append(f"drain: the systems saw {stats['duplicates']} Idempotency-Key value(s) twice")
    print(f"  the systems: {stats['posts']:,} calls, {stats['duplicates']} repeated Idempotency-Key, "
          f"at most {stats['peak']} answers pending at once (of {SYSTEMS * DRAIN_IN_FLIGHT} slots)")
    pg = [r for r in rows if r["label"].startswith("drain, PostgreSQL")]
    if len(pg) == 2:
        pg[1]["baseline"], pg[1]["ratio"] = f"{pg[0]['rate']:,.0f} (1 process)", f"{pg[1]['rate'] / pg[0]['rate']:.2f}"
        print(f"  PostgreSQL 2 processes / 1 process: {pg[1]['rate'] / pg[0]['rate']:.2f}")
    return {"rows": rows, "systems": stats}


# --- scenario 4: sign-ups and withdrawals --------------------------------------------------------


def _round(app: Any, count: int, tag: str) -> tuple[float, float, int, int]:
    """``count`` sign-ups, then a withdrawal of ``marketing_email`` by each; (sign-ups/s,
    withdrawals/s, consent tasks planned by the sign-ups, by the withdrawals)."""
    from api.services import unit_of_work
    from privacy.apikeys import create_key
    from privacy.context import utcnow

    with unit_of_work() as session:
        _, token = create_key(session, f"bench-{tag}", ["consent:write", "consent:read"], "bench", utcnow())
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    planned = "SELECT count(*) FROM request_tasks WHERE operation = 'consent'"
    before, subjects = query(planned)[0][0], []
    began = time.perf_counter()
    for n in range(count):
        answer = client.post("/v1/consents", headers=headers, json={
            "subject": {"email": f"{tag}-{n}@example.se", "first_name": "Anna", "country": "SE",
                        "birth_date": "1990-04-01"}, "notice_version": NOTICE, "source": SOURCE,
            "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False}})
        subjects.append(answer.json["subject_id"] if answer.status_code == 201 else None)
    signup_s, middle = time.perf_counter() - began, query(planned)[0][0]
    began = time.perf_counter()
    for subject in subjects:
        client.post("/v1/consents", headers=headers, json={
            "subject_id": subject, "purposes": {"marketing_email": False}, "notice_version": NOTICE, "source": SOURCE})
    withdraw_s = time.perf_counter() - began
    if None in subjects:
        raise RuntimeError(f"withdrawal {tag}: {subjects.count(None)} sign-up(s) not answered 201")
    return count / signup_s, count / withdraw_s, middle - before, query(planned)[0][0] - middle


def run_withdrawal(tmp: Path, count: int, faults: list[str]) -> dict[str, Any]:
    """Scenario 4 on SQLite, the two policies alternating; the JSON result."""
    from privacy.crypto.keys import generate_master_key

    print(f"\n== withdrawal: {count} sign-ups then {count} withdrawals (POST /v1/consents, Flask test client), "
          f"no connectors vs {SYSTEMS} webhook connectors taking consent; {WITHDRAWAL_ROUNDS} rounds alternating")
    unused = [f"http://127.0.0.1:9/privacy-{n}" for n in range(SYSTEMS)]  # nothing runs the tasks here
    configs = {"none": app_config(tmp / "w-none", f"sqlite:///{tmp / 'w-none.db'}", [], generate_master_key()),
               "6 systems": app_config(tmp / "w-six", f"sqlite:///{tmp / 'w-six.db'}",
                                       webhooks(unused, operations=("consent",)), generate_master_key())}
    got: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in configs}
    for number in range(WITHDRAWAL_ROUNDS):
        for name, config in configs.items():
            with bench_app(config, migrate=number == 0) as app:
                got[name].append(_round(app, count, f"r{number}-{name.replace(' ', '')}"))
            r = got[name][-1]
            print(f"  round {number + 1}, {name:<9}: sign-ups {r[0]:,.0f}/s, withdrawals {r[1]:,.0f}/s, "
                  f"consent tasks planned by sign-ups {r[2]}, by withdrawals {r[3]:,}", flush=True)
    expected = {"none": 0, "6 systems": count * SYSTEMS}
    for name, rounds in got.items():
        if any(r[2] or r[3] != expected[name] for r in rounds):
            faults.append(f"withdrawal {name}: tasks planned {[r[2:] for r in rounds]}, expected (0, {expected[name]})")
    med = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for name, rs in got.items()}
    rows = []
    for index, what in enumerate(("sign-ups", "withdrawals")):
        none, six = med["none"][index], med["6 systems"][index]
        rows.append({"label": f"{what}, 6 consent connectors", "rate": round(six, 1),
                     "baseline": f"{none:,.0f} req/s, no connectors", "ratio": f"{six / none:.2f}"})
        print(f"  {what}: {six:,.0f}/s with 6 connectors vs {none:,.0f}/s without; ratio {six / none:.2f}")
    return {"rows": rows, "rounds": {k: [list(r) for r in v] for k, v in got.items()}}
