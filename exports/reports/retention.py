"""The retention report's data: the figures of :func:`privacy.reports.retention_figures`
with the period they cover, read in one read transaction."""
from __future__ import annotations

import datetime as dt
from typing import Any

from privacy.context import PrivacyContext
from privacy.policy.file import Policy
from privacy.reports import Period, retention_figures
from privacy.storage.repositories.reports import ReportRepository

COLUMNS = ("section", "purpose", "category", "measure", "value")


def retention_report(ctx: PrivacyContext, now: dt.datetime, since: dt.datetime | None = None,
                     until: dt.datetime | None = None) -> dict[str, Any]:
    """``{"report", "as_of", "since", "until", "figures": [{section, purpose, category, measure, value}]}``."""
    period = Period.default(now, since, until)
    session = ctx.database.session()
    try:
        repo = ReportRepository(session, ctx.database.dialect.name)
        figures = retention_figures(repo, ctx.policy, period, now)
    finally:
        session.rollback()
    return {"report": "retention", "as_of": _iso(now), "since": _iso(period.since), "until": _iso(period.until),
            "figures": [dict(zip(COLUMNS, figure, strict=True)) for figure in figures]}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def purpose_titles(policy: Policy, lang: str) -> dict[str, str]:
    """Each purpose's title in ``lang`` as the policy gives it, else its code."""
    return {p.code: p.name.get(lang) or p.code for p in policy.purposes}
