"""CPU seconds per request, read from ``/proc`` while a load run lasts (Linux only).

Requests per second on a shared two-core machine drift by 10-15 % from one run to the
next, and when the servers, PostgreSQL and the load generator share the cores the rate
says how much CPU a request takes rather than how fast the code could go. This counts that
CPU directly, per side:

- the application: user and system time of every process in the gunicorn server's process
  group (its master and workers; :class:`bench.servers.GunicornServer` starts each in a new
  session);
- PostgreSQL: the backends serving the side's database, found by their process title
  (``postgres: <user> <database> <client> ...``). Only a server on this machine can be
  read; for another one the figure is left out. A backend that exits during a run takes
  its time with it, so the side's pool must keep its connections (SQLAlchemy's does).

Counters tick at ``SC_CLK_TCK`` (100 Hz): a 10-second run at 400 requests a second is
counted to about a quarter of a percent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def group_cpu_s(pgid: int) -> float:
    """User plus system CPU seconds of the live processes of process group ``pgid``."""
    total = 0
    for pid in (p.name for p in PROC.iterdir() if p.name.isdigit()):
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total * TICK_S


def backends_cpu_s(database: str) -> float | None:
    """User plus system CPU seconds of the PostgreSQL backends connected to ``database`` on
    this machine; None when none is found."""
    total, found = 0, False
    for pid in (p.name for p in PROC.iterdir() if p.name.isdigit()):
        try:
            title = (PROC / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        if len(title) > 2 and title[0] == "postgres:" and title[2] == database:
            fields = _stat_fields(pid)
            if fields is not None:
                total += int(fields[11]) + int(fields[12])
                found = True
    return total * TICK_S if found else None


@dataclass
class SideCost:
    """The CPU one side spent over its measured runs, and the requests those runs served."""

    requests: int = 0
    app_s: float = 0.0
    db_s: float | None = 0.0

    def add(self, requests: int, app_s: float, db_s: float | None) -> None:
        self.requests += requests
        self.app_s += app_s
        self.db_s = None if db_s is None or self.db_s is None else self.db_s + db_s

    def per_request_ms(self) -> dict[str, float | None]:
        """Milliseconds of CPU per request: the application, PostgreSQL, and both."""
        if not self.requests:
            return {"app_ms": None, "db_ms": None, "total_ms": None}
        app = 1e3 * self.app_s / self.requests
        db = None if self.db_s is None else 1e3 * self.db_s / self.requests
        return {"app_ms": round(app, 3), "db_ms": None if db is None else round(db, 3),
                "total_ms": round(app + (db or 0.0), 3)}


@dataclass
class CpuMeter:
    """Per side (``service``, ``baseline``): its server's process group and database."""

    groups: dict[str, int]
    databases: dict[str, str]
    sides: dict[str, SideCost] = field(default_factory=dict)

    def snapshot(self, side: str) -> tuple[float, float | None]:
        return group_cpu_s(self.groups[side]), backends_cpu_s(self.databases[side])

    def record(self, side: str, before: tuple[float, float | None], requests: int) -> None:
        """Add the CPU spent since ``before`` (a :meth:`snapshot`) for ``requests`` requests."""
        app, db = self.snapshot(side)
        db_s = None if db is None or before[1] is None else db - before[1]
        self.sides.setdefault(side, SideCost()).add(requests, app - before[0], db_s)

    def report(self) -> dict[str, dict[str, float | None]]:
        """Per side, the CPU per request (see :meth:`SideCost.per_request_ms`)."""
        return {side: cost.per_request_ms() for side, cost in self.sides.items()}
