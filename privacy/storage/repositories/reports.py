"""The reports' set-based queries: every figure is a COUNT over a GROUP BY, read from
pseudonymous columns (ids, times, statuses, field names), never from a decrypted value.

The policy's catalogue (which field is of which category, which purpose uses which
fields) comes in as data and becomes a CASE expression in the statement, so that the
database does the grouping; no Python loop walks the subjects.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sqlalchemy import case, func, literal, literal_column, select

from privacy.storage.models import AuditEntry, ConsentEvent, ConsentState, DataRequest, HeldField, Subject, SubjectField
from privacy.storage.statements import AnyTransaction, as_transaction

_S = Subject.__table__
_F = SubjectField.__table__
_CS = ConsentState.__table__
_CE = ConsentEvent.__table__
_A = AuditEntry.__table__
_H = HeldField.__table__
_R = DataRequest.__table__

REFERENCE_COLUMNS = {"collection": _S.c.created_at, "last_activity": _S.c.last_activity_at,
                     "withdrawal": _CS.c.recorded_at, "consent_expiry": _CS.c.recorded_at,
                     "expiry": _CS.c.recorded_at}
"""The moment each retention rule counts its period from (see :mod:`privacy.reports`;
the same clocks as :mod:`privacy.retention.rules`, ``expiry`` being its other spelling)."""
REFERENCE_STATUSES: dict[str, tuple[str, ...] | None] = {
    "collection": None, "last_activity": None, "withdrawal": ("withdrawn", "declined"),
    "consent_expiry": ("expired",), "expiry": ("expired",)}
NOT_HELD = ("declined",)
"""States that hold no data for their purpose: a declined purpose was never given any."""


@dataclass(frozen=True)
class DueBit:
    """The bit a state of ``purpose`` sets when its reference time under the rule ``after``
    lies in (oldest, newest]."""
    purpose: str
    after: str
    bit: int
    oldest: dt.datetime
    newest: dt.datetime


def _state_bits(purpose: str, held_bit: int, due_bits: Sequence[DueBit]) -> Any:
    """The bits one consent state of ``purpose`` sets: held, and each window it falls due in."""
    value: Any = case((_CS.c.status.in_(NOT_HELD), 0), else_=held_bit)
    for after in sorted({d.after for d in due_bits if d.purpose == purpose}):
        value = value + _due_bits(after, [d for d in due_bits if d.purpose == purpose and d.after == after])
    return value


def _due_bits(after: str, windows: Sequence[DueBit]) -> Any:
    """One CASE for all the windows of a rule: the windows' ends cut the time line into
    intervals, each inside a fixed set of windows, and the first end at or after the
    reference time names the interval. A state is compared with a few times, once each."""
    ref = REFERENCE_COLUMNS[after]
    ends = sorted({d.oldest for d in windows} | {d.newest for d in windows})
    whens: list[tuple[Any, Any]] = [(ref <= ends[0], 0)]
    for low, high in pairwise(ends):
        whens.append((ref <= high, sum(d.bit for d in windows if d.oldest <= low and high <= d.newest)))
    statuses = REFERENCE_STATUSES[after]
    if statuses:
        whens.insert(0, (_CS.c.status.not_in(statuses), 0))
    return case(*whens, else_=0)


def month_of(column: Any, dialect: str) -> Any:
    """``YYYY-MM`` of a UTC time column, in the database's own dialect. The formats are
    written into the SQL, not bound: PostgreSQL takes ``GROUP BY`` on an expression only
    when it is the very expression selected, and two binds of one value are not."""
    if dialect == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM'"))
    return func.strftime(literal_column("'%Y-%m'"), column)


def calendar_months(since: dt.datetime, until: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(``YYYY-MM``, start, end) of each UTC calendar month overlapping [since, until), cut to it."""
    since, until = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
    months = []
    first = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while first < until:
        following = (first + dt.timedelta(days=32)).replace(day=1)
        months.append((f"{first:%Y-%m}", max(first, since), min(following, until)))
        first = following
    return months


class ReportRepository:
    """Read-only aggregate queries over subjects, fields, consents, holds, requests and the audit log."""

    def __init__(self, tx: AnyTransaction, dialect: str) -> None:
        self.tx = as_transaction(tx)
        self.dialect = dialect

    def subject_groups(self, held_bits: Mapping[str, int], due_bits: Sequence[DueBit],
                       field_bits: Mapping[str, int], bounds: Sequence[dt.datetime], labels: Sequence[str]
                       ) -> list[tuple[str, int, int, int]]:
        """(age bucket, states mask, fields mask, subjects): the live subjects grouped by the
        age of their record (``bounds`` are the buckets' newest creation times, newest first,
        ``labels`` one more than ``bounds``), what their consent states say and the set of
        fields they have, each as a sum of distinct bits. A state sets its purpose's bit of
        ``held_bits`` unless its status is one of :data:`NOT_HELD`, and each bit of
        ``due_bits`` whose window (oldest, newest] holds its reference time (the retention
        rule's clock, :data:`REFERENCE_COLUMNS`). Subjects with no bit set are left out.

        One pass: each subject's states and fields are summed over its own rows (primary-key
        ranges), so the one grouping left is over small integers. A three-way join of states
        and fields would make (purposes x fields) rows per subject and sort them by strings;
        a scan of the states per purpose and rule would read every state again."""
        newer = [(_S.c.created_at > bound, literal(label)) for bound, label in zip(bounds, labels, strict=False)]
        bucket = case(*newer, else_=literal(labels[-1]))
        per_purpose = [(_CS.c.purpose == code, _state_bits(code, bit, due_bits)) for code, bit in held_bits.items()]
        states = (select(func.sum(case(*per_purpose, else_=0))).where(_CS.c.subject_id == _S.c.id)
                  .scalar_subquery())
        fields = (select(func.sum(case(dict(field_bits), value=_F.c.name, else_=0)))
                  .where(_F.c.subject_id == _S.c.id).scalar_subquery())
        per_subject = (select(bucket.label("bucket"), states.label("states"), fields.label("fields"))
                       .where(_S.c.shredded_at.is_(None)).subquery())
        c = per_subject.c
        query = (select(c.bucket, c.states, c.fields, func.count()).where(c.states > 0)
                 .group_by(c.bucket, c.states, c.fields))
        return [(b, int(p), int(f or 0), int(n)) for b, p, f, n in self.tx.all(query)]

    def audit_details(self, action: str, since: dt.datetime, until: dt.datetime) -> list[str]:
        """The details (JSON text) of the audit entries ``action`` in [since, until), in order:
        one per sweep run, so few."""
        query = (select(_A.c.details).where(_A.c.action == action, _A.c.at >= since, _A.c.at < until)
                 .order_by(_A.c.seq))
        return [details for (details,) in self.tx.all(query)]

    def audit_by_month(self, action: str, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
        month = month_of(_A.c.at, self.dialect)
        query = (select(month, func.count()).where(_A.c.action == action, _A.c.at >= since, _A.c.at < until)
                 .group_by(month))
        return {m: n for m, n in self.tx.all(query)}

    def holds_in_force(self, now: dt.datetime) -> list[tuple[str, str, int, int]]:
        """(hold, end month, subjects, fields) of the held fields whose hold has not ended."""
        month = month_of(_H.c.until, self.dialect)
        query = (select(_H.c.hold, month, func.count(func.distinct(_H.c.subject_id)), func.count())
                 .where(_H.c.until > now).group_by(_H.c.hold, month))
        return [tuple(row) for row in self.tx.all(query)]  # type: ignore[misc]

    def consent_by_month(self, since: dt.datetime, until: dt.datetime, statuses: Sequence[str]
                         ) -> list[tuple[str, str, str, int]]:
        """(purpose, month, status, events) of the ledger's events in [since, until): one count
        per calendar month (UTC) over the range of ``ix_consent_events_recorded_at``, which
        holds every column read. The months are cut here, not by a date function on each event,
        which would read and sort every event of the period."""
        out: list[tuple[str, str, str, int]] = []
        for month, start, end in calendar_months(since, until):
            query = (select(_CE.c.purpose, _CE.c.status, func.count())
                     .where(_CE.c.recorded_at >= start, _CE.c.recorded_at < end, _CE.c.status.in_(list(statuses)))
                     .group_by(_CE.c.purpose, _CE.c.status))
            out += [(purpose, month, status, int(n)) for purpose, status, n in self.tx.all(query)]
        return out

    def requests_open(self, open_statuses: Sequence[str], now: dt.datetime) -> list[tuple[str, int, int]]:
        """(type, open, overdue) of the requests still open: overdue past the (extended) deadline."""
        deadline = func.coalesce(_R.c.extended_until, _R.c.due_at)
        late = func.coalesce(func.sum(case((deadline < now, 1), else_=0)), 0)
        query = (select(_R.c.type, func.count(), late).where(_R.c.status.in_(list(open_statuses)))
                 .group_by(_R.c.type))
        return [(t, int(n), int(o)) for t, n, o in self.tx.all(query)]
