"""How long a sign-up holds its row lock on ``chain_heads``, measured from the client side.

A sign-up appends its consent events after ``SELECT ... FROM chain_heads ... FOR UPDATE``
(``privacy.storage.repositories.ledger.LOCK_HEAD``) and holds that row lock until its
COMMIT. :func:`probing` wraps psycopg's ``Cursor.execute``, ``Connection.commit`` /
``rollback`` and the end of a pipeline (the repositories run their statements straight on
the DBAPI cursor of a pooled connection, below SQLAlchemy's events) and records, per
connection, when each statement naming ``chain_heads`` with ``FOR UPDATE`` was sent and
when the following COMMIT was answered (by ``commit()``, or, for a ``COMMIT`` statement
queued in a pipeline, at the pipeline's end), and the statement's parameters (the head's
name: one row, or a shard such as ``consent/07``, whatever the code locks). The service's
code is not changed.

Seen from the client, that span includes the lock statement's trip to the server and the
COMMIT's answer back; the lock itself is held from the statement's arrival (uncontended: the
sign-ups run one at a time) until the COMMIT is done, so the server-side hold is the span
less one round trip through the proxy (measured by the caller with ``SELECT 1``: twice the
simulated delay plus the proxy's own forwarding).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bulk import scoped_environ, signup_body


@dataclass
class HoldProbe:
    """Lock spans by connection while a block runs under :func:`probing`."""

    spans: list[tuple[str, float]] = field(default_factory=list)
    """(locked row, seconds from the lock statement's start to the COMMIT's end)."""
    statements: list[int] = field(default_factory=list)
    """Statements (execute or executemany) run after each lock statement before the COMMIT."""
    rolled_back: int = 0
    _open: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    _after: dict[int, int] = field(default_factory=dict)
    _queued_end: dict[int, bool] = field(default_factory=dict)

    def ran(self, conn: Any) -> None:
        """A statement ran on ``conn`` (counted when it holds a lock)."""
        if id(conn) in self._open:
            self._after[id(conn)] += 1

    def locked(self, conn: Any, params: Any, began: float) -> None:
        """A lock statement with ``params`` started at ``began`` on ``conn``."""
        values = params.values() if isinstance(params, Mapping) else (params or ())
        self._open.setdefault(id(conn), []).append((",".join(map(str, values)), began))
        self._after.setdefault(id(conn), -1)

    def queued_end(self, conn: Any, committed: bool) -> None:
        """A ``COMMIT`` or ``ROLLBACK`` statement was queued in ``conn``'s pipeline."""
        self._queued_end[id(conn)] = committed

    def pipeline_ended(self, conn: Any, at: float) -> None:
        """``conn``'s pipeline ended at ``at``: a queued COMMIT or ROLLBACK was answered."""
        committed = self._queued_end.pop(id(conn), None)
        if committed is not None:
            self.ended(conn, at, committed)

    def ended(self, conn: Any, at: float, committed: bool) -> None:
        """``conn``'s transaction ended at ``at``: its locks are released."""
        after = self._after.pop(id(conn), 0)
        for row, began in self._open.pop(id(conn), []):
            if committed:
                self.spans.append((row, at - began))
                self.statements.append(after)
            else:
                self.rolled_back += 1


def is_head_lock(query: Any) -> bool:
    """Whether the statement text locks rows of ``chain_heads``."""
    text = query.decode(errors="replace") if isinstance(query, bytes) else str(query)
    return "chain_heads" in text and "FOR UPDATE" in text.upper()


@contextlib.contextmanager
def probing(probe: HoldProbe) -> Iterator[HoldProbe]:
    """Record the head locks of every psycopg connection of this process into ``probe``."""
    import psycopg

    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
    commit, rollback = psycopg.Connection.commit, psycopg.Connection.rollback
    pipeline_exit = psycopg.Pipeline.__exit__

    def timed_execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = execute(self, query, params, **kwargs)
        ending = str(query).strip().upper() if isinstance(query, str) else ""
        if ending in ("COMMIT", "ROLLBACK"):
            if self.connection.pgconn.pipeline_status:  # answered when the pipeline ends
                probe.queued_end(self.connection, ending == "COMMIT")
            else:
                probe.ended(self.connection, time.perf_counter(), ending == "COMMIT")
            return result
        if is_head_lock(query):
            probe.locked(self.connection, params, began)
        probe.ran(self.connection)
        return result

    def timed_pipeline_exit(self: Any, *exc: Any) -> None:
        try:
            pipeline_exit(self, *exc)
        finally:
            probe.pipeline_ended(self._conn, time.perf_counter())

    def counted_executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        result = executemany(self, query, params_seq, **kwargs)
        probe.ran(self.connection)
        return result

    def timed_commit(self: Any) -> None:
        commit(self)
        probe.ended(self, time.perf_counter(), committed=True)

    def timed_rollback(self: Any) -> None:
        rollback(self)
        probe.ended(self, time.perf_counter(), committed=False)

    psycopg.Cursor.execute = timed_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
    psycopg.Connection.commit = timed_commit  # type: ignore[method-assign]
    psycopg.Connection.rollback = timed_rollback  # type: ignore[method-assign]
    psycopg.Pipeline.__exit__ = timed_pipeline_exit  # type: ignore[method-assign]
    try:
        yield probe
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]
        psycopg.Connection.rollback = rollback  # type: ignore[method-assign]
        psycopg.Pipeline.__exit__ = pipeline_exit  # type: ignore[method-assign]


def sign_ups(client: Any, api_key: str, tag: str, count: int) -> int:
    """``count`` sign-ups through the test client (distinct e-mails); how many were not 201."""
    headers = {"Authorization": f"Bearer {api_key}"}
    failed = 0
    for n in range(count):
        answer = client.post("/v1/consents", headers=headers, json=signup_body(f"hold-{tag}-{n}@example.se"))
        failed += answer.status_code != 201
    return failed


def measure_hold(url: str, master_key: str, api_key: str, folder: Path, count: int,
                 round_trip_ms: float) -> dict[str, Any]:
    """``count`` sign-ups in-process (the Flask test client on ``url``) after 20 unmeasured
    ones; the lock spans, the server-side hold (span less ``round_trip_ms``) and its ceiling."""
    from api import create_app
    from api.db import db

    with scoped_environ({}):
        app = create_app({"INSTANCE_DIR": str(folder), "DATABASE_URL": url, "MASTER_KEY": master_key})
    client, tag = app.test_client(), f"{time.time_ns():x}"
    failed = sign_ups(client, api_key, f"warm-{tag}", 20)
    probe = HoldProbe()
    began = time.perf_counter()
    with probing(probe):
        failed += sign_ups(client, api_key, tag, count)
    elapsed = time.perf_counter() - began
    with app.app_context():
        db.engine.dispose()
    return summarise(probe, count, elapsed, failed, round_trip_ms)


def summarise(probe: HoldProbe, count: int, elapsed: float, failed: int, round_trip_ms: float) -> dict[str, Any]:
    """The JSON result of a probe: spans and holds in ms (median, p90), rows, ceiling."""
    spans = sorted(span * 1e3 for _, span in probe.spans)
    rows = len({row for row, _ in probe.spans})
    out: dict[str, Any] = {"signups": count, "failed": failed, "signups_per_s_one_at_a_time": round(count / elapsed, 1),
                           "locks": len(spans), "locks_per_signup": round(len(spans) / count, 2),
                           "distinct_rows": rows, "rolled_back": probe.rolled_back,
                           "round_trip_ms": round(round_trip_ms, 3)}
    if not spans:
        return out
    holds = [max(span - round_trip_ms, 0.0) for span in spans]
    median, p90 = statistics.median(holds), holds[int(0.9 * (len(holds) - 1))]
    p90_span = spans[int(0.9 * (len(spans) - 1))]
    out.update({"span_median_ms": round(statistics.median(spans), 3), "span_p90_ms": round(p90_span, 3),
                "statements_after_lock_median": statistics.median(probe.statements),
                "hold_median_ms": round(median, 3), "hold_p90_ms": round(p90, 3),
                "ceiling_per_s": round(rows * 1e3 / median, 1) if median else None,
                "ceiling_one_row_per_s": round(1e3 / median, 1) if median else None})
    return out


def print_hold(result: Mapping[str, Any]) -> None:
    """The lock hold lines."""
    print(f"  lock on chain_heads per sign-up ({result['signups']} sign-ups one at a time, in-process, "
          f"{result['signups_per_s_one_at_a_time']:,.0f}/s): {result['locks']} locks "
          f"({result['locks_per_signup']} per sign-up) on {result['distinct_rows']} distinct row(s)")
    if "hold_median_ms" not in result:
        print("  no sign-up locked a chain_heads row: no contended lock remains")
        return
    print(f"  statements after the lock statement, before the COMMIT: {result['statements_after_lock_median']} "
          "(median)")
    print(f"  held (lock statement sent -> COMMIT answered) median {result['span_median_ms']:.2f} ms, "
          f"p90 {result['span_p90_ms']:.2f} ms; on the server (less one {result['round_trip_ms']:.2f} ms round trip) "
          f"median {result['hold_median_ms']:.2f} ms, p90 {result['hold_p90_ms']:.2f} ms")
    rows = result["distinct_rows"]
    print(f"  ceiling it implies: {rows} row(s) / {result['hold_median_ms']:.2f} ms = "
          f"{result['ceiling_per_s']:,.0f} sign-ups/s" + (f" (one row: {result['ceiling_one_row_per_s']:,.0f}/s)"
                                                         if rows > 1 else ""))
