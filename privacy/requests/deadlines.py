"""Deadlines for data-subject requests (GDPR Art. 12(3)).

A request must be answered "within one month of receipt", which Regulation (EEC, Euratom)
No 1182/71 on periods, dates and time limits reads as a calendar month: the deadline is the
same day-of-month in the next month, or that month's last day when the day does not exist
(31 January → 28/29 February). It runs to the end of that day in the controller's time zone,
so all arithmetic is done on local calendar dates and only the result is turned back into
UTC; adding 24-hour multiples would drift by an hour across a daylight-saving change.
"""
from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIME_ZONE = "Europe/Stockholm"
MAX_EXTENSION_DAYS = 61  # Art. 12(3): "two further months", granted in days by the officer


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a ValueError naming it if it does not exist, so a typo in the
    configuration fails at start-up instead of as a KeyError (or OSError) on the first request."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as {DEFAULT_TIME_ZONE!r}") from exc


def controller_time_zone(controller: Mapping[str, Any]) -> ZoneInfo:
    """The controller's zone, from the policy's ``controller.time_zone`` (Stockholm if unset)."""
    return time_zone(controller.get("time_zone") or DEFAULT_TIME_ZONE)


def _local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date ``moment`` falls on in ``tz``; a naive datetime is refused because
    ``astimezone`` would silently read it as the server's own local time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(tz).date()


def _end_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    """The last instant of ``day`` in ``tz``, as aware UTC.

    Built as the next local midnight minus one microsecond, with the subtraction done in UTC:
    the day may last 23 or 25 hours, and where midnight falls in a spring-forward gap
    (fold=0 maps it to the moment the gap starts) the result is still the last instant
    before the next day begins.
    """
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return next_midnight.astimezone(UTC) - timedelta(microseconds=1)


def _add_one_month(day: date) -> date:
    """The same day-of-month in the following month, clamped to that month's last day."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def one_month_after(received_at: datetime, tz: ZoneInfo) -> datetime:
    """When a request received at ``received_at`` (aware, normally UTC) must be answered:
    the end of the local day one calendar month after the local day of receipt, as aware UTC.
    The receipt date is taken in ``tz`` because a request received late in the UTC evening
    may already be on the next day for the controller."""
    return _end_of_local_day(_add_one_month(_local_date(received_at, tz)), tz)


def extended(due_at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The deadline ``due_at`` extended by ``days`` (1..61) calendar days: the end of the local
    day that many days after the local date of ``due_at``, as aware UTC. Counted in local dates,
    not 24-hour steps, so an extension across a daylight-saving change still ends at midnight."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_EXTENSION_DAYS:
        raise ValueError(f"an extension is 1 to {MAX_EXTENSION_DAYS} days, got {days!r}")
    return _end_of_local_day(_local_date(due_at, tz) + timedelta(days=days), tz)


def is_overdue(due_at: datetime, now: datetime) -> bool:
    """Whether ``now`` is past the deadline; ``due_at`` is the last instant still in time,
    so a reply at exactly ``due_at`` is not late."""
    return now > due_at
