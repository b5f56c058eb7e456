"""Drive load with wrk and read its ``--latency`` report.

:func:`run_load` runs ``wrk`` for a fixed duration against one URL and returns a
:class:`LoadResult` (requests per second, p50 and p99 latency, non-2xx count, socket
errors). When wrk is missing the bench first tries ``apt-get install -y wrk``
(:func:`ensure_wrk`) and otherwise falls back to :func:`run_python_load`, a small
bounded thread-based client that measures the same figures less precisely.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
"""Milliseconds per unit of wrk's time format."""

SOCKET_ERRORS = ("connect", "read", "write", "timeout")
"""The kinds of socket error wrk counts, in the order it prints them."""


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    url: str
    duration_s: float
    requests: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    latency_avg_ms: float | None = None
    latency_max_ms: float | None = None
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    raw: str = ""

    @property
    def errors(self) -> int:
        """Non-2xx responses plus socket errors of any kind."""
        return self.non_2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (without the raw wrk output)."""
        out = asdict(self)
        out.pop("raw")
        out["errors"] = self.errors
        return out


@dataclass
class LoadSpec:
    """One load to generate: where, how, and how to build each request.

    ``lua_script`` and ``env`` drive wrk; ``body_factory`` builds the same bodies for the
    Python fallback client (called with a worker number and a per-worker counter).
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    lua_script: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    body_factory: Callable[[int, int], bytes] | None = None


def ensure_wrk(install: bool = True) -> str | None:
    """The path of ``wrk``; installs the Debian package first if it is missing and we may.

    Returns ``None`` when wrk is not available (the caller then uses the Python client).
    """
    path = shutil.which("wrk")
    if path or not install:
        return path
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    cmd = [apt, "install", "-y", "wrk"]
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return None
        cmd = [sudo, "-n", *cmd]
    print(f"wrk not found; running: {' '.join(cmd)}", flush=True)
    try:
        subprocess.run(cmd, check=False, timeout=300, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  could not install wrk: {exc}", flush=True)
    return shutil.which("wrk")


def parse_time_ms(text: str) -> float:
    """``"1.23ms"`` → 1.23; understands wrk's units us, ms, s, m and h."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_wrk_output(output: str, url: str = "") -> LoadResult:
    """Parse the text wrk prints with ``--latency`` into a :class:`LoadResult`."""
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if not total or not rps:
        raise ValueError(f"unexpected wrk output:\n{output}")
    percentiles: dict[str, float] = {}
    dist = output.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, value in re.findall(r"^\s+(\d+)%\s+(\S+)", dist[1], re.MULTILINE):
            percentiles[pct] = parse_time_ms(value)
    latency = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", output, re.MULTILINE)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadResult(
        tool="wrk",
        url=url,
        duration_s=parse_time_ms(total.group(2)) / 1e3,
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=percentiles.get("50"),
        p99_ms=percentiles.get("99"),
        latency_avg_ms=parse_time_ms(latency.group(1)) if latency else None,
        latency_max_ms=parse_time_ms(latency.group(2)) if latency else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(SOCKET_ERRORS, map(int, socket.groups()), strict=True)) if socket else {},
        raw=output,
    )


def wrk_command(
    wrk: str,
    spec: LoadSpec,
    duration_s: int,
    connections: int,
    threads: int,
    timeout_s: int,
) -> list[str]:
    """The wrk command line for ``spec``."""
    cmd = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration_s}s",
        f"--timeout={timeout_s}s",
        "--latency",
    ]
    for name, value in spec.headers.items():
        cmd += ["--header", f"{name}: {value}"]
    if spec.lua_script is not None:
        cmd += ["--script", str(spec.lua_script)]
    cmd.append(spec.url)
    return cmd


def run_load(
    spec: LoadSpec,
    duration_s: int,
    connections: int,
    threads: int,
    timeout_s: int = 10,
    wrk: str | None = None,
) -> LoadResult:
    """Generate load for ``duration_s`` seconds with wrk (or the Python client without it)."""
    if wrk is None:
        return run_python_load(spec, duration_s, connections, timeout_s)
    cmd = wrk_command(wrk, spec, duration_s, connections, threads, timeout_s)
    env = {**os.environ, **spec.env}
    proc = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration_s + timeout_s + 30,  # wrk stops by itself; this is a backstop
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    return parse_wrk_output(proc.stdout, spec.url)


def _percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def run_python_load(spec: LoadSpec, duration_s: int, connections: int, timeout_s: int = 10) -> LoadResult:
    """A bounded closed-loop client: ``connections`` threads, each one request at a time.

    Only a fallback for machines without wrk: the GIL makes it the bottleneck well before
    a fast server is, so its figures understate both sides.
    """
    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = dict(spec.headers)
    if spec.body_factory is not None:
        headers.setdefault("Content-Type", "application/json")
    deadline = time.monotonic() + duration_s
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {"non_2xx": 0, "errors": 0}

    def worker(number: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        mine: list[float] = []
        non_2xx = errors = counter = 0
        while time.monotonic() < deadline:
            counter += 1
            body = spec.body_factory(number, counter) if spec.body_factory else None
            start = time.perf_counter()
            try:
                conn.request(spec.method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            mine.append((time.perf_counter() - start) * 1e3)
            if not 200 <= response.status < 300:
                non_2xx += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses["non_2xx"] += non_2xx
            statuses["errors"] += errors

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(duration_s + timeout_s + 5)
    elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        tool="python",
        url=spec.url,
        duration_s=elapsed,
        requests=len(latencies),
        rps=len(latencies) / elapsed if elapsed else 0.0,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        latency_avg_ms=statistics.fmean(latencies) if latencies else None,
        latency_max_ms=latencies[-1] if latencies else None,
        non_2xx=statuses["non_2xx"],
        socket_errors={"other": statuses["errors"]},
    )
