"""The retention report's figures, as one flat list of (section, purpose, category, measure, value).

What the figures mean is decided here (the repository only counts):

- ``held``: live (not shredded) subjects with a consent state for a purpose that is not
  ``declined`` (a declined purpose was never given any data), and the fields of theirs
  that the purpose uses, per data category;
- ``age``: those fields by the age of their subject (``subjects.created_at``; fields keep
  no creation time of their own), in the buckets of :data:`AGE_BUCKETS`;
- ``due``: a purpose's rule ``{period_days, after}`` makes a subject's data due at the
  reference time plus ``period_days``: ``collection`` counts from ``subjects.created_at``,
  ``last_activity`` from ``subjects.last_activity_at`` (both for the subjects with a state
  for the purpose), ``withdrawal`` from the state's ``recorded_at`` when withdrawn or
  declined, ``consent_expiry`` (or ``expiry``) from it when expired, as the sweeps of
  :mod:`privacy.retention` count. ``due_30d`` and ``due_90d`` count what falls
  due within that many days from now (90 includes 30); ``past_due`` what is due already
  and still held (the next sweep's work);
- ``removed``: what the sweeps of the period deleted, anonymised or minimised (audit
  entries ``retention.swept`` that were no dry run), and the erasures (``subject.erased``);
- ``holds``: held fields whose legal hold is still in force, by hold (purpose column) and
  end month (category column);
- ``consent``: ledger events per purpose and month (category column): ``given`` (status
  granted) and ``withdrawn``;
- ``requests``: open and overdue data-subject requests, by type (purpose column).
"""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from privacy.policy.file import Policy, PurposeDef
from privacy.requests.states import OPEN
from privacy.storage.repositories.reports import DueBit, ReportRepository

Figure = tuple[str, str, str, str, int]
SECTIONS = ("held", "age", "due", "removed", "erasures", "holds", "consent", "requests")
"""The report's sections, in the order every format gives them."""
AGE_BUCKETS = (("lt_30d", 30), ("30_180d", 180), ("180_365d", 365), ("1_2y", 730), ("gt_2y", None))
DUE_WINDOWS = (("due_30d", 30), ("due_90d", 90))
SWEEP_ACTIONS = ("delete", "anonymise", "minimise")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SLOTS = ("held", *(name for name, _ in DUE_WINDOWS), "past_due")
"""The bits each purpose takes in a subject's states mask."""
PER_PASS = 62 // len(SLOTS)


@dataclass(frozen=True)
class Period:
    since: dt.datetime
    until: dt.datetime

    @classmethod
    def default(cls, now: dt.datetime, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Period:
        """The given bounds, else the twelve months (365 days) up to now."""
        end = until or now
        return cls(since or end - dt.timedelta(days=365), end)


def retention_figures(repo: ReportRepository, policy: Policy, period: Period, now: dt.datetime) -> list[Figure]:
    """Every figure of the retention report, sorted (the same input gives the same list)."""
    figures: list[Figure] = []
    figures += _held_and_due(repo, policy, now)
    figures += _removed(repo, period)
    figures += [("holds", hold, month, measure, n) for hold, month, subjects, fields in repo.holds_in_force(now)
                for measure, n in (("subjects", subjects), ("fields", fields))]
    measure = {"granted": "given", "withdrawn": "withdrawn"}
    figures += [("consent", purpose, month, measure[status], n)
                for purpose, month, status, n in repo.consent_by_month(period.since, period.until, tuple(measure))]
    figures += [("requests", type_, "", measure, n) for type_, opened, late in repo.requests_open(OPEN, now)
                for measure, n in (("open", opened), ("overdue", late))]
    return sorted(figures, key=lambda f: (SECTIONS.index(f[0]), *f[1:]))


def _held_and_due(repo: ReportRepository, policy: Policy, now: dt.datetime) -> list[Figure]:
    """Subjects and fields per purpose and category, the fields' ages, and what falls due
    under each purpose's rule, from one pass over the subjects: the groups of subjects
    sharing an age bucket, what their states say (per purpose :data:`SLOTS` bits: held and
    each due window) and a set of fields (few groups). At most :data:`PER_PASS` purposes a
    pass (the bits of one 64-bit integer); a purpose's figures need only its own bits."""
    names = sorted(policy.fields)
    if len(names) > 62:
        raise ValueError("the report counts at most 62 fields (as bits of one integer)")
    bit = {name: 1 << i for i, name in enumerate(names)}
    purposes = list(policy.purposes)
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for start in range(0, len(purposes), PER_PASS):
        _count_pass(repo, policy, purposes[start:start + PER_PASS], bit, now, counts)
    return [(section, code, category, measure, n) for (section, code, category, measure), n in counts.items()]


def _count_pass(repo: ReportRepository, policy: Policy, purposes: list[PurposeDef], bit: dict[str, int],
                now: dt.datetime, counts: dict[tuple[str, str, str, str], int]) -> None:
    categories = sorted({spec.category for spec in policy.fields.values()})
    in_category = {c: sum(b for n, b in bit.items() if policy.fields[n].category == c) for c in categories}
    slot = {(p.code, name): 1 << (i * len(SLOTS) + j) for i, p in enumerate(purposes) for j, name in enumerate(SLOTS)}
    due = [DueBit(p.code, p.retention["after"], slot[p.code, name], oldest, newest)
           for p in purposes if p.retention
           for name, (oldest, newest) in due_windows(int(p.retention["period_days"]), now).items()]
    bounds = [now - dt.timedelta(days=days) for _, days in AGE_BUCKETS if days is not None]
    groups = repo.subject_groups({p.code: slot[p.code, "held"] for p in purposes}, due, bit, bounds,
                                 [label for label, _ in AGE_BUCKETS])
    for p in purposes:
        uses = sum(bit[f] for f in p.fields if f in bit)
        if p.retention:
            for name in SLOTS[1:]:
                counts["due", p.code, "", name] += sum(n for _, states, _, n in groups if states & slot[p.code, name])
        for bucket, states, fields, n in groups:
            if not states & slot[p.code, "held"]:
                continue
            counts["held", p.code, "", "subjects"] += n
            for category, mask in in_category.items():
                held = (fields & uses & mask).bit_count()
                if held:
                    counts["held", p.code, category, "subjects"] += n
                    counts["held", p.code, category, "fields"] += n * held
                    counts["age", p.code, category, bucket] += n * held


def due_windows(period_days: int, now: dt.datetime) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """The reference times whose data falls due in each window: due = reference + period."""
    period = dt.timedelta(days=period_days)
    windows = {name: (now - period, now + dt.timedelta(days=days) - period) for name, days in DUE_WINDOWS}
    windows["past_due"] = (EPOCH, now - period)
    return windows


def _removed(repo: ReportRepository, period: Period) -> list[Figure]:
    """Sums over the period's sweeps (one audit entry per run: few) and the erasures."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for text in repo.audit_details("retention.swept", period.since, period.until):
        details: dict[str, Any] = json.loads(text)
        if details.get("dry_run", True):
            continue
        for purpose, by_category in (details.get("counts") or {}).items():
            for category, by_action in by_category.items():
                for action in SWEEP_ACTIONS:
                    counts[purpose, category, action] += int(by_action.get(action, 0))
        for kind, n in (details.get("subjects") or {}).items():
            totals[f"subjects_{kind}"] += int(n)
        totals["fields_removed"] += int(details.get("fields_removed", 0))
    out: list[Figure] = [("removed", p, c, a, n) for (p, c, a), n in counts.items()]
    out += [("removed", "", "", measure, n) for measure, n in totals.items()]
    out += [("erasures", "", month, "erased", n)
            for month, n in repo.audit_by_month("subject.erased", period.since, period.until).items()]
    return out
