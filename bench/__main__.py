"""``python -m bench``: the service's throughput and latency against baselines of the same run.

Starts the service (``gunicorn -w 2 wsgi:app``) on a fresh SQLite database in a
temporary instance folder, and the baseline app (:mod:`bench.baseline_app`) under the
same gunicorn settings, then measures with wrk:

1. ``signup``: ``POST /v1/consents`` (3 purposes, 4 fields, a distinct e-mail per
   request) against the baseline's ``POST /write`` (one INSERT, one COMMIT).
   Target: service req/s >= 50 % of the baseline's.
2. ``check``: ``POST /v1/consents/check`` for one known e-mail against the baseline's
   ``GET /read/<key>`` (one indexed SELECT). Target: >= 60 %.
3. ``bulk``: after recording ``--bulk-known`` subjects, ``POST /v1/consents/check`` with
   ``--bulk-size`` e-mails (the known ones plus unknown ones), median of ``--bulk-runs``
   calls, against a plain SQL ``IN`` query over the same blind indexes on the service's
   own SQLite file. Target: median < 2 s.

Prints one table per scenario and writes ``bench/results/latest.json``. The exit status
is 0 when everything ran, even if a target was missed (this is a report); 1 when the
service answered a non-2xx (or a request failed); 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from bench import bulk
from bench.report import finish, start
from bench.servers import (
    GUNICORN_TIMEOUT_S,
    WORKERS,
    GunicornServer,
    ServerError,
    prepare_service,
    service_env,
    tail,
)
from bench.wrk import LoadResult, LoadSpec, ensure_wrk, run_load

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
SCENARIOS = ("signup", "check", "bulk")

SIGNUP_TARGET = 0.50
"""Service sign-ups per second over baseline writes per second, at least."""
CHECK_TARGET = 0.60
"""Service single checks per second over baseline indexed reads per second, at least."""
BULK_TARGET_S = 2.0
"""Median seconds of one bulk check, at most."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``BENCH_*`` environment variables give the defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the consent service against baselines measured in the same run.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke run: 2 s per load, no warm-up, fewer known subjects for bulk",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=None,
        help="seconds of load per measurement (env BENCH_DURATION; default 10, quick 2)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="seconds of unmeasured load before each measurement (default 1, quick 0)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating baseline/service measurements per scenario; each side reports "
        "its median round (default 3, quick 1)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=_env_int("BENCH_CONNECTIONS", 16),
        help="concurrent connections (env BENCH_CONNECTIONS; default 16)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=_env_int("BENCH_THREADS", 0),
        help="wrk threads (env BENCH_THREADS; default: the number of CPUs)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument(
        "--bulk-size",
        type=int,
        default=_env_int("BENCH_BULK_SIZE", 100_000),
        help="e-mails in one bulk check (default 100000)",
    )
    parser.add_argument(
        "--bulk-known",
        type=int,
        default=None,
        help="how many of them are recorded first (default half; quick 5000)",
    )
    parser.add_argument("--bulk-runs", type=int, default=5, help="timed bulk calls (median)")
    parser.add_argument(
        "--bulk-purpose",
        default="loyalty_club",
        help="purpose of the bulk check (default loyalty_club, granted at sign-up)",
    )
    parser.add_argument(
        "--seed-threads",
        type=int,
        default=8,
        help="client threads for seeding subjects",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (databases, logs)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_FILE,
        help=f"JSON results (default {RESULTS_FILE})",
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 2 if args.quick else _env_int("BENCH_DURATION", 10)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.threads <= 0:
        args.threads = min(os.cpu_count() or 1, args.connections)
    if args.bulk_known is None:
        args.bulk_known = min(5_000, args.bulk_size // 2) if args.quick else args.bulk_size // 2
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.only = [name for name in SCENARIOS if name in only]
    if min(args.duration, args.rounds, args.connections, args.bulk_runs) < 1:
        parser.error("--duration, --rounds, --connections and --bulk-runs must be >= 1")
    if not 0 <= args.bulk_known <= args.bulk_size:
        parser.error("--bulk-known must be between 0 and --bulk-size")
    return args


def median_round(rounds: list[LoadResult]) -> LoadResult:
    """The round with the median req/s (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


@dataclass
class Comparison:
    """A load scenario's measurements, round by round, and its verdict.

    Each side's figure is its median round by req/s (the project reports medians: a
    best round flatters whichever side got the quieter moment). Rounds alternate between
    the sides, so both see the same drift of the machine.
    """

    name: str
    what: str
    target: float
    service_rounds: list[LoadResult] = field(default_factory=list)
    baseline_rounds: list[LoadResult] = field(default_factory=list)

    @property
    def service(self) -> LoadResult:
        """The service's median round."""
        return median_round(self.service_rounds)

    @property
    def baseline(self) -> LoadResult:
        """The baseline's median round."""
        return median_round(self.baseline_rounds)

    @property
    def ratio(self) -> float:
        """Service req/s over baseline req/s."""
        return self.service.rps / self.baseline.rps if self.baseline.rps else 0.0

    @property
    def round_ratios(self) -> list[float]:
        """Service over baseline req/s of each round pair. The two rounds of a pair run
        back to back, so a drift of the machine's speed cancels out of their ratio: the
        spread of these shows how far one run's ratio can be trusted."""
        return [s.rps / b.rps for s, b in zip(self.service_rounds, self.baseline_rounds, strict=True) if b.rps]

    @property
    def passed(self) -> bool:
        """Whether the ratio meets the target."""
        return self.ratio >= self.target

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "what": self.what,
            "service": self.service.to_json(),
            "baseline": self.baseline.to_json(),
            "rounds_rps": {
                "service": [r.rps for r in self.service_rounds],
                "baseline": [r.rps for r in self.baseline_rounds],
            },
            "ratio": round(self.ratio, 4),
            "round_ratios": [round(r, 4) for r in self.round_ratios],
            "target": f">= {self.target:.2f}",
            "pass": self.passed,
        }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_comparison(comp: Comparison) -> None:
    """The table of one load scenario."""
    print(f"\n== {comp.name}: {comp.what}")
    print(f"  {'':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'errors':>8}")
    for label, res in (("service", comp.service), ("baseline", comp.baseline)):
        print(
            f"  {label:<10}{_fmt(res.rps, 1):>10}{_fmt(res.p50_ms):>10}{_fmt(res.p99_ms):>10}"
            f"{res.requests:>10,}{res.errors:>8,}"
        )
    if len(comp.service_rounds) > 1:
        for label, rounds in (
            ("service", comp.service_rounds),
            ("baseline", comp.baseline_rounds),
        ):
            print(f"  {label} req/s by round: {', '.join(f'{r.rps:,.1f}' for r in rounds)}")
        print(f"  ratio by round pair: {', '.join(f'{r:.2f}' for r in comp.round_ratios)}")
    verdict = "PASS" if comp.passed else "FAIL"
    print(f"  ratio service/baseline req/s: {comp.ratio:.2f} (target >= {comp.target:.2f})  {verdict}")


@dataclass
class Bench:
    """One benchmark run: settings, the two servers, and what was measured."""

    args: argparse.Namespace
    wrk: str | None
    service: GunicornServer
    baseline: GunicornServer
    service_env: dict[str, str]
    api_key: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    results: dict[str, Any] = field(default_factory=dict)
    service_errors: list[str] = field(default_factory=list)
    bench_errors: list[str] = field(default_factory=list)

    def _run(self, spec: LoadSpec, seconds: int, side: str, scenario: str) -> LoadResult:
        """One load run; its errors are recorded against ``side``."""
        args = self.args
        result = run_load(spec, seconds, args.connections, args.threads, wrk=self.wrk)
        self._note_errors(result, side, scenario)
        return result

    def compare(self, comp: Comparison, baseline: LoadSpec, service: LoadSpec) -> Comparison:
        """Warm both sides up, then measure them in ``--rounds`` alternating rounds."""
        sides = {"baseline": baseline, "service": service}
        if self.args.warmup:
            for side, spec in sides.items():
                self._run(spec, self.args.warmup, side, f"{comp.name} (warm-up)")
        for number in range(self.args.rounds):
            order = ("baseline", "service") if number % 2 == 0 else ("service", "baseline")
            for side in order:
                result = self._run(sides[side], self.args.duration, side, comp.name)
                rounds = comp.service_rounds if side == "service" else comp.baseline_rounds
                rounds.append(result)
        print_comparison(comp)
        self.results[comp.name] = comp.to_json()
        return comp

    def _note_errors(self, result: LoadResult, side: str, scenario: str) -> None:
        if not result.errors:
            return
        sockets = ", ".join(f"{k} {v}" for k, v in result.socket_errors.items() if v)
        message = (
            f"{side} {scenario}: {result.non_2xx} non-2xx responses"
            + (f", socket errors: {sockets}" if sockets else "")
            + f" out of {result.requests} requests ({result.url})"
        )
        print(f"\n!!! ERROR: {message}", flush=True)
        (self.service_errors if side == "service" else self.bench_errors).append(message)

    def service_client(self) -> bulk.HttpClient:
        """A JSON client for the service, authenticated with the bench key."""
        return bulk.HttpClient(self.service.base_url, self.api_key)

    def run_signup(self) -> None:
        """Scenario 1: sign-ups against one durable write."""
        signup_env = {"BENCH_RUN_ID": self.run_id}
        script = BENCH_DIR / "signup.lua"

        def body(worker: int, counter: int) -> bytes:
            email = f"bench-{self.run_id}-p{worker}-{counter}@example.se"
            return json.dumps(bulk.signup_body(email)).encode()

        comp = Comparison(
            "signup",
            "POST /v1/consents (3 purposes, 4 fields, distinct e-mails) vs POST /write (one INSERT + COMMIT)",
            SIGNUP_TARGET,
        )
        self.compare(
            comp,
            LoadSpec(
                self.baseline.base_url + "/write",
                "POST",
                lua_script=script,
                env=signup_env,
                body_factory=body,
            ),
            LoadSpec(
                self.service.base_url + "/v1/consents",
                "POST",
                headers={"Authorization": f"Bearer {self.api_key}"},
                lua_script=script,
                env=signup_env,
                body_factory=body,
            ),
        )

    def run_check(self) -> None:
        """Scenario 2: a single consent check against one indexed SELECT."""
        email = f"check-{self.run_id}@example.se"
        status, answer = self.service_client().post("/v1/consents", bulk.signup_body(email))
        if status != 201:
            self.service_errors.append(f"check: recording {email} answered HTTP {status}: {answer[:300]!r}")
            print(f"\n!!! ERROR: {self.service_errors[-1]}")
            return
        status, answer = bulk.HttpClient(self.baseline.base_url).post("/write", bulk.signup_body(email))
        if status != 201:
            raise ServerError(f"baseline /write answered HTTP {status}: {answer[:300]!r}")
        purpose = "marketing_email"
        check_body = json.dumps({"purpose": purpose, "emails": [email]}).encode()
        comp = Comparison(
            "check",
            f"POST /v1/consents/check (1 known e-mail, {purpose}) vs GET /read/<key> (one indexed SELECT)",
            CHECK_TARGET,
        )
        self.compare(
            comp,
            LoadSpec(f"{self.baseline.base_url}/read/{quote(email)}"),
            LoadSpec(
                self.service.base_url + "/v1/consents/check",
                "POST",
                headers={"Authorization": f"Bearer {self.api_key}"},
                lua_script=BENCH_DIR / "check.lua",
                env={"BENCH_CHECK_EMAIL": email, "BENCH_CHECK_PURPOSE": purpose},
                body_factory=lambda worker, counter: check_body,
            ),
        )

    def run_bulk(self) -> None:
        """Scenario 3: one check of many e-mails against a plain SQL IN query."""
        args = self.args
        known = [f"seed-{self.run_id}-{i}@example.se" for i in range(args.bulk_known)]
        unknown = [f"unknown-{self.run_id}-{i}@example.se" for i in range(args.bulk_size - args.bulk_known)]
        emails = known + unknown
        print(
            f"\n== bulk: POST /v1/consents/check with {len(emails):,} e-mails "
            f"({len(known):,} known, purpose {args.bulk_purpose}) vs SQL IN over the same "
            "blind indexes"
        )
        print(
            f"  seeding {len(known):,} sign-ups over HTTP ({args.seed_threads} threads) ...",
            flush=True,
        )
        client = self.service_client()
        seed = bulk.seed_subjects(client, known, args.seed_threads)
        print(f"  seeding took {seed.seconds:.1f} s ({seed.rate:,.0f} sign-ups/s), {seed.failures} failed")
        if seed.failures:
            self.service_errors.append(
                f"bulk seeding: {seed.failures} of {seed.count} sign-ups failed, first: {seed.first_failure}"
            )
            print(f"\n!!! ERROR: {self.service_errors[-1]}")
            return

        indexes, db_path = bulk.blind_indexes(self.service_env, emails)
        try:
            service_runs = bulk.time_service_check(client, args.bulk_purpose, emails, args.bulk_runs)
        except (RuntimeError, OSError) as exc:
            self.service_errors.append(f"bulk check: {exc}")
            print(f"\n!!! ERROR: {self.service_errors[-1]}")
            return
        baseline_runs = bulk.time_sql_baseline(db_path, indexes, args.bulk_runs)

        service_s = bulk.median_seconds(service_runs)
        baseline_s = bulk.median_seconds(baseline_runs)
        ratio = service_s / baseline_s if baseline_s else float("inf")
        passed = service_s < BULK_TARGET_S
        print(f"  {'':<20}{'median s':>10}{'min s':>10}{'max s':>10}{'allowed':>10}{'found':>10}")
        for label, runs in (
            ("service", service_runs),
            ("baseline (SQL IN)", baseline_runs),
        ):
            secs = [run.seconds for run in runs]
            print(
                f"  {label:<20}{bulk.median_seconds(runs):>10.3f}{min(secs):>10.3f}"
                f"{max(secs):>10.3f}"
                + (f"{runs[0].allowed:>10,}{'':>10}" if label == "service" else f"{'':>10}{runs[0].allowed:>10,}")
            )
        print(f"  ratio service/baseline time: {ratio:,.1f}x (for context)")
        print(f"  target: service median < {BULK_TARGET_S:.1f} s  {'PASS' if passed else 'FAIL'}")
        notes = []
        if baseline_runs[0].allowed != len(known):
            notes.append(f"the SQL baseline found {baseline_runs[0].allowed:,} of {len(known):,} known blind indexes")
        if service_runs[0].allowed != len(known):
            notes.append(
                f"the service allowed {service_runs[0].allowed:,} of {len(known):,} "
                f"known subjects for {args.bulk_purpose}"
            )
        for note in notes:
            print(f"  note: {note}")
        self.results["bulk"] = {
            "what": f"POST /v1/consents/check with {len(emails)} e-mails ({len(known)} known)",
            "purpose": args.bulk_purpose,
            "seed": {
                "count": seed.count,
                "seconds": round(seed.seconds, 3),
                "per_second": round(seed.rate, 1),
                "threads": args.seed_threads,
            },
            "service": {
                "median_s": service_s,
                "runs_s": [r.seconds for r in service_runs],
                "allowed": service_runs[0].allowed,
                "denied": service_runs[0].denied,
            },
            "baseline": {
                "median_s": baseline_s,
                "runs_s": [r.seconds for r in baseline_runs],
                "found": baseline_runs[0].allowed,
                "chunk": bulk.SQLITE_MAX_PARAMS,
            },
            "ratio": round(ratio, 2),
            "target": f"median < {BULK_TARGET_S} s",
            "pass": passed,
            "notes": notes,
        }


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the process exit status (see the module docstring)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)  # so that `finally` stops the servers
    machine = start()
    wrk = ensure_wrk()
    print(
        f"servers: gunicorn -w {WORKERS} --timeout {GUNICORN_TIMEOUT_S}, 127.0.0.1, SQLite in a fresh temporary folder"
    )
    if wrk:
        print(
            f"load: wrk --threads {args.threads} --connections {args.connections} "
            f"--duration {args.duration}s --timeout 10s --latency; warm-up {args.warmup}s, "
            f"{args.rounds} alternating round(s) per side, median round reported"
        )
    else:
        print(
            f"load: wrk unavailable; Python client with {args.connections} threads for "
            f"{args.duration}s (figures understate both sides)"
        )
    print(f"scenarios: {', '.join(args.only)}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="privacy-bench-"))
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": {
            "tool": "wrk" if wrk else "python",
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "gunicorn_workers": WORKERS,
            "quick": args.quick,
            "bulk_size": args.bulk_size,
            "bulk_known": args.bulk_known,
            "bulk_runs": args.bulk_runs,
        },
        "scenarios": {},
    }
    status = 0
    bench: Bench | None = None
    try:
        with ExitStack() as stack:
            instance = tmp / "instance"
            instance.mkdir()
            env = service_env(instance)
            api_key = prepare_service(env)
            baseline_db = tmp / "baseline.db"
            from bench.baseline_app import create_schema

            create_schema(str(baseline_db))
            baseline = stack.enter_context(
                GunicornServer(
                    "baseline",
                    "bench.baseline_app:create_app()",
                    {**os.environ, "BENCH_BASELINE_DB": str(baseline_db)},
                    tmp / "baseline.log",
                )
            )
            service = stack.enter_context(GunicornServer("service", "wsgi:app", env, tmp / "service.log"))
            print(
                f"service {service.base_url}, baseline {baseline.base_url}, tmp {tmp}",
                flush=True,
            )
            bench = Bench(args, wrk, service, baseline, env, api_key, results=report["scenarios"])
            for name in args.only:
                getattr(bench, f"run_{name}")()
                for server in (service, baseline):
                    if not server.alive():
                        raise ServerError(f"{server.name} died\n{tail(server.log_path)}")
    except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"\n!!! bench could not run: {exc}", file=sys.stderr)
        report["fatal"] = f"{type(exc).__name__}: {exc}"
        status = 2
    finally:
        if bench is not None:
            report["service_errors"] = bench.service_errors
            report["bench_errors"] = bench.bench_errors
            if bench.service_errors:
                print(
                    f"\n!!! the service errored; see {tmp / 'service.log'}:\n{tail(tmp / 'service.log', 20)}",
                    file=sys.stderr,
                )
                status = status or 1
            if bench.bench_errors:
                status = status or 2
        finish(report, machine, args.output, tmp, args.keep, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
