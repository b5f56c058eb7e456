"""``python -m bench.pg_signup``: sign-ups on PostgreSQL against a bare-INSERT baseline.

Uses ``PRIVACY_BENCH_DATABASE_URL`` or starts a throwaway server with ``.ci/postgres.sh``
(as the tests do), creates one database for the service (migrated with ``privacy db
upgrade``) and one for the baseline (:mod:`bench.baseline_app` on PostgreSQL: one INSERT
and COMMIT per request, the service's pool settings), then, with both under gunicorn with
the same settings and the same worker count:

1. ``direct``: for ``--workers`` (default 2 and 4), ``POST /v1/consents`` (3 purposes,
   4 fields, a distinct e-mail per request; ``bench/signup.lua``) against the baseline's
   ``POST /write``, wrk with 16 connections, ``--rounds`` alternating rounds of
   ``--duration`` s, the median round of each side and their ratio. Target: >= 0.50 at 2
   workers, and no fall in sign-ups/s when the workers double.
2. ``latency``: the same at ``--latency-workers`` (default 2, 4, 8) with both servers
   reaching PostgreSQL through :mod:`bench.netdelay` (each chunk delayed ``--latency-ms``,
   default 0.5, each way); first the round trip it adds (``SELECT 1``) and how long a sign-up
   holds its row lock on ``chain_heads`` and the ceiling that implies
   (:mod:`bench.pg_lockhold`). ``--latency-ms 0`` skips this part.

Each comparison also prints each side's CPU per request over its measured rounds
(:mod:`bench.cpu_cost`: the gunicorn process group and, for a server on this machine, the
backends of the side's database), and their ratio: on a machine where the cores run out,
the rate ratio is that CPU ratio.

Writes ``bench/results/pg_signup.json``. Exit status 0 when it ran (a report, whatever the
ratios), 1 when the service answered a non-2xx, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import psycopg
from sqlalchemy.engine import make_url

from bench.__main__ import Bench
from bench.cpu_cost import CpuMeter
from bench.fanout_load import postgres
from bench.netdelay import DelayProxy
from bench.pg_lockhold import measure_hold, print_hold
from bench.report import finish, start
from bench.servers import GUNICORN_TIMEOUT_S, GunicornServer, ServerError, prepare_service, service_env, tail
from bench.wrk import LoadResult, LoadSpec, ensure_wrk

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "pg_signup.json"
RATIO_TARGET = 0.50


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.pg_signup", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured round (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds per side first (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side; medians (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="wrk threads (default: the CPUs)")
    parser.add_argument("--workers", type=_counts, default=[2, 4], help="gunicorn workers, part 1 (default 2,4)")
    parser.add_argument("--latency-ms", type=float, default=0.5,
                        help="delay each way between the servers and PostgreSQL, part 2 (default 0.5; 0 skips)")
    parser.add_argument("--latency-workers", type=_counts, default=[2, 4, 8],
                        help="gunicorn workers, part 2 (default 2,4,8)")
    parser.add_argument("--hold-signups", type=int, default=300, help="sign-ups timed for the lock hold (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.threads <= 0:
        args.threads = min(os.cpu_count() or 1, args.connections)
    if min(args.duration, args.rounds, args.connections, args.hold_signups, *args.workers) < 1:
        parser.error("--duration, --rounds, --connections, --hold-signups and the worker counts must be >= 1")
    return args


@contextlib.contextmanager
def databases(url: str, run_id: str) -> Iterator[tuple[str, str]]:
    """(service URL, baseline URL): two fresh databases on ``url``'s server, dropped after."""

    server = make_url(url)
    names = (f"bench_service_{run_id}", f"bench_baseline_{run_id}")
    plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield tuple(server.set(database=n).render_as_string(hide_password=False) for n in names)  # type: ignore[misc]
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (the delay proxy)."""

    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def round_trip_ms(url: str, count: int = 200) -> float:
    """Median milliseconds of ``SELECT 1`` on one connection to ``url``."""

    times = []
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        for _ in range(count):
            began = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


@dataclass
class MeteredBench(Bench):
    """A :class:`Bench` that counts each side's CPU over its measured rounds (warm-ups left out)."""

    meter: CpuMeter | None = None

    def _run(self, spec: LoadSpec, seconds: int, side: str, scenario: str) -> LoadResult:
        if self.meter is None or "warm-up" in scenario:
            return super()._run(spec, seconds, side, scenario)
        before = self.meter.snapshot(side)
        result = super()._run(spec, seconds, side, scenario)
        self.meter.record(side, before, result.requests)
        return result


def print_cpu(cpu: dict[str, dict[str, float | None]]) -> float | None:
    """The CPU per request of both sides; the ratio baseline/service of their totals."""
    service, baseline = cpu.get("service", {}), cpu.get("baseline", {})
    for name, side in (("service", service), ("baseline", baseline)):
        db = side.get("db_ms")
        print(f"  CPU per request, {name:8s}: application {side.get('app_ms') or 0:.3f} ms + PostgreSQL "
              + (f"{db:.3f} ms = {side.get('total_ms') or 0:.3f} ms" if db is not None else "(not on this machine)"))
    if not service.get("total_ms") or not baseline.get("total_ms"):
        return None
    ratio = baseline["total_ms"] / service["total_ms"]  # type: ignore[operator]
    print(f"  CPU ratio baseline/service per request: {ratio:.2f} (the rate ratio when CPU is what runs out)")
    return round(ratio, 3)


class Run:
    """One run: settings, the service's environment and key, the baseline's URL, results."""

    def __init__(self, args: argparse.Namespace, wrk: str | None, tmp: Path) -> None:
        self.args, self.wrk, self.tmp = args, wrk, tmp
        self.service_errors: list[str] = []
        self.bench_errors: list[str] = []
        self.env: dict[str, str] = {}
        self.api_key = ""

    def prepare(self, service_url: str, baseline_url: str) -> None:
        """The service's instance folder and environment; migrate its database, make a key;
        the baseline's table."""
        from bench.baseline_app import create_schema

        create_schema(baseline_url)
        instance = self.tmp / "instance"
        instance.mkdir()
        self.env = {**service_env(instance), "PRIVACY_DATABASE_URL": service_url}
        self.api_key = prepare_service(self.env)

    def measure(self, service_url: str, baseline_url: str, workers: int, label: str) -> dict[str, Any]:
        """Both servers at ``workers`` workers on these URLs; the sign-up comparison's result."""
        tag = f"{label}-w{workers}"
        env = {**self.env, "PRIVACY_DATABASE_URL": service_url}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")}
        base_env["BENCH_BASELINE_DATABASE_URL"] = baseline_url
        print(f"\n-- {label}, {workers} gunicorn workers each", flush=True)
        with (GunicornServer("baseline", "bench.baseline_app:create_app()", base_env, self.tmp / f"baseline-{tag}.log",
                             workers=workers) as baseline,
              GunicornServer("service", "wsgi:app", env, self.tmp / f"service-{tag}.log", workers=workers) as service):
            results: dict[str, Any] = {}
            assert service.proc is not None and baseline.proc is not None
            meter = CpuMeter({"service": service.proc.pid, "baseline": baseline.proc.pid},
                             {"service": str(make_url(service_url).database),
                              "baseline": str(make_url(baseline_url).database)})
            bench = MeteredBench(self.args, self.wrk, service, baseline, env, self.api_key, results=results,
                                 meter=meter)
            bench.run_signup()
            cpu = meter.report()
            cpu_ratio = print_cpu(cpu)
            for server in (service, baseline):
                if not server.alive():
                    raise ServerError(f"{server.name} died\n{tail(server.log_path)}")
        self.service_errors += [f"{tag}: {e}" for e in bench.service_errors]
        self.bench_errors += [f"{tag}: {e}" for e in bench.bench_errors]
        return {"workers": workers, **results["signup"], "cpu_per_request": cpu, "cpu_ratio": cpu_ratio}

    def part(self, urls: tuple[str, str], counts: list[int], label: str) -> list[dict[str, Any]]:
        """The comparison at each worker count; prints the part's table."""
        rows = [self.measure(urls[0], urls[1], workers, label) for workers in counts]
        print_part(label, rows)
        return rows


def print_part(label: str, rows: list[dict[str, Any]]) -> None:
    """One part's table: per worker count, both sides' req/s and p99, the ratio."""
    print(f"\n== {label}: sign-ups vs bare INSERT on PostgreSQL (median of rounds)")
    print(f"  {'workers':>7}{'service req/s':>15}{'p99 ms':>9}{'baseline req/s':>16}{'p99 ms':>9}{'ratio':>8}"
          f"{'service vs previous':>21}{'CPU ratio':>11}")
    previous = None
    for row in rows:
        service, baseline = row["service"], row["baseline"]
        growth = f"{service['rps'] / previous:.2f}x" if previous else "-"
        print(f"  {row['workers']:>7}{service['rps']:>15,.1f}{service['p99_ms'] or 0:>9.1f}{baseline['rps']:>16,.1f}"
              f"{baseline['p99_ms'] or 0:>9.1f}{row['ratio']:>8.2f}{growth:>21}"
              f"{row['cpu_ratio'] if row.get('cpu_ratio') is not None else '-':>11}")
        row["service_over_previous"] = round(service["rps"] / previous, 3) if previous else None
        previous = service["rps"]
    first = rows[0]
    verdict = "PASS" if first["ratio"] >= RATIO_TARGET else "FAIL"
    print(f"  target: ratio >= {RATIO_TARGET:.2f} at {first['workers']} workers: {first['ratio']:.2f} {verdict}")
    if len(rows) > 1:
        held = all(r["service_over_previous"] >= 1.0 for r in rows[1:])
        print(f"  target: service sign-ups/s do not fall as the workers grow: {'PASS' if held else 'FAIL'}")


def calibrated_proxy(stack: contextlib.ExitStack, url: str, delay_ms: float) -> tuple[DelayProxy, float, float]:
    """A delay proxy to ``url``'s server whose added ``SELECT 1`` round trip is close to 2 x
    ``delay_ms``: its own forwarding (thread hand-offs, 0.1-0.2 ms each way on a busy machine)
    is taken off the delay, in up to 4 tries, keeping the closest. (The proxy, the direct and
    the proxied round trip in ms.)"""

    server = make_url(url)
    target = (server.host or "127.0.0.1", server.port or 5432)
    direct, setting = round_trip_ms(url), delay_ms
    best: tuple[DelayProxy, float, float] | None = None
    for _ in range(4):
        proxy = DelayProxy(target, setting).__enter__()
        delayed = round_trip_ms(through(url, proxy.port))
        error = delayed - direct - 2 * delay_ms
        if best is None or abs(error) < abs(best[2]):
            if best is not None:
                best[0].__exit__(None, None, None)
            best = (proxy, delayed, error)
        else:
            proxy.__exit__(None, None, None)
        if abs(error) < 0.05:
            break
        setting = max(setting - error / 2, 0.0)
    stack.push(best[0])
    return best[0], direct, best[1]


def latency_part(run: Run, urls: tuple[str, str], report: dict[str, Any]) -> None:
    """Part 2: the delay proxy, the round trip it adds, the lock hold, the worker counts."""
    args = run.args
    with contextlib.ExitStack() as stack:
        proxy, direct, delayed = calibrated_proxy(stack, urls[0], args.latency_ms)
        proxied = (through(urls[0], proxy.port), through(urls[1], proxy.port))
        print(f"\n== latency: {args.latency_ms} ms each way between the servers and PostgreSQL "
              f"(bench.netdelay, port {proxy.port}, each chunk delayed {proxy.delay_ms:.3f} ms + its forwarding)")
        print(f"  SELECT 1 round trip: {direct:.3f} ms direct, {delayed:.3f} ms through the proxy "
              f"(+{delayed - direct:.3f} ms; 2 x {args.latency_ms} ms = {2 * args.latency_ms:.3f} ms)", flush=True)
        hold = measure_hold(proxied[0], run.env["PRIVACY_MASTER_KEY"], run.api_key, run.tmp / "hold",
                            args.hold_signups, delayed)
        print_hold(hold)
        if hold["failed"]:
            run.service_errors.append(f"lock hold: {hold['failed']} sign-up(s) not answered 201")
        report["latency"] = {"delay_ms": args.latency_ms, "proxy_delay_setting_ms": round(proxy.delay_ms, 3),
                             "round_trip_ms": {"direct": round(direct, 3), "proxied": round(delayed, 3)},
                             "lock_hold": hold}
        report["latency"]["rows"] = run.part(proxied, args.latency_workers, f"latency {args.latency_ms} ms")


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def run_parts(run: Run, report: dict[str, Any]) -> None:
    """PostgreSQL, the two databases, both parts."""
    with postgres() as (url, source):
        if url is None:
            raise ServerError(f"no PostgreSQL: {source}")
        print(f"PostgreSQL: {source}", flush=True)
        report["postgres"] = source
        with databases(url, uuid.uuid4().hex[:8]) as urls:
            run.prepare(*urls)
            report["direct"] = run.part(urls, run.args.workers, "direct")
            if run.args.latency_ms > 0:
                latency_part(run, urls, report)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status (see the module docstring)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    machine, wrk = start(), ensure_wrk()
    print(f"servers: gunicorn --timeout {GUNICORN_TIMEOUT_S}, same workers for both; load: wrk --connections "
          f"{args.connections} --threads {args.threads}, {args.rounds} x {args.duration} s alternating, warm-up "
          f"{args.warmup} s" if wrk else "load: wrk unavailable; Python client (figures understate both sides)",
          flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="privacy-pg-signup-"))
    report: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine,
                              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    run, status = Run(args, wrk, tmp), 0
    try:
        run_parts(run, report)
    except (ServerError, RuntimeError, OSError, subprocess.SubprocessError, psycopg.Error) as exc:
        print(f"\n!!! bench could not run: {exc}", file=sys.stderr)
        report["fatal"] = f"{type(exc).__name__}: {exc}"
        status = 2
    finally:
        report["service_errors"], report["bench_errors"] = run.service_errors, run.bench_errors
        if run.service_errors:
            print("\n!!! the service errored:\n  " + "\n  ".join(run.service_errors), file=sys.stderr)
            status = status or 1
        elif run.bench_errors:
            status = status or 2
        finish(report, machine, args.output, tmp, args.keep, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
