"""Art. 12(3) deadlines: one calendar month to the end of the local day, extensions in days."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from privacy.requests.deadlines import DEFAULT_TIME_ZONE, extended, is_overdue, one_month_after, time_zone

STOCKHOLM = time_zone(DEFAULT_TIME_ZONE)
NEW_YORK = time_zone("America/New_York")
REYKJAVIK = time_zone("Atlantic/Reykjavik")
SANTIAGO = time_zone("America/Santiago")  # springs forward at local midnight: 00:00 does not exist that day
MICROSECOND = timedelta(microseconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- month ends and leap years ----------------------------------------------------------------

def test_the_default_time_zone_is_stockholm() -> None:
    assert STOCKHOLM.key == "Europe/Stockholm"


def test_a_mid_month_request_is_due_at_the_end_of_the_same_day_next_month() -> None:
    due = one_month_after(utc("2026-06-15T09:00:00Z"), STOCKHOLM)
    assert due == utc("2026-07-15T21:59:59.999999Z")
    assert due.tzinfo is UTC


def test_31_january_is_due_at_the_end_of_february() -> None:
    assert one_month_after(utc("2026-01-31T10:00:00Z"), STOCKHOLM) == utc("2026-02-28T22:59:59.999999Z")


def test_31_january_of_a_leap_year_is_due_at_the_end_of_29_february() -> None:
    assert one_month_after(utc("2028-01-31T10:00:00Z"), STOCKHOLM) == utc("2028-02-29T22:59:59.999999Z")


def test_leap_day_is_due_at_the_end_of_29_march() -> None:
    # Summer time began on 26 March 2028, so the day ends at 22:00 UTC.
    assert one_month_after(utc("2028-02-29T10:00:00Z"), STOCKHOLM) == utc("2028-03-29T21:59:59.999999Z")


def test_31_march_is_due_at_the_end_of_30_april() -> None:
    assert one_month_after(utc("2026-03-31T10:00:00Z"), STOCKHOLM) == utc("2026-04-30T21:59:59.999999Z")


def test_31_december_is_due_at_the_end_of_31_january_next_year() -> None:
    assert one_month_after(utc("2026-12-31T10:00:00Z"), STOCKHOLM) == utc("2027-01-31T22:59:59.999999Z")


# --- the local midnight -------------------------------------------------------------------------

def test_a_late_utc_evening_receipt_already_counts_as_the_next_day_in_stockholm() -> None:
    # 23:30 UTC on 30 January is 00:30 on 31 January in Stockholm.
    assert one_month_after(utc("2026-01-30T23:30:00Z"), STOCKHOLM) == utc("2026-02-28T22:59:59.999999Z")


def test_the_receipt_date_changes_exactly_at_the_local_midnight() -> None:
    last_of_april = utc("2026-04-30T21:59:59.999999Z")  # 23:59:59.999999 CEST, 30 April
    first_of_may = utc("2026-04-30T22:00:00Z")  # 00:00 CEST, 1 May
    assert one_month_after(last_of_april, STOCKHOLM) == utc("2026-05-30T21:59:59.999999Z")
    assert one_month_after(first_of_may, STOCKHOLM) == utc("2026-06-01T21:59:59.999999Z")


def test_the_same_instant_is_a_different_receipt_date_in_new_york_and_stockholm() -> None:
    received = utc("2026-02-01T03:00:00Z")  # 22:00 on 31 January in New York, 04:00 on 1 February in Stockholm
    assert one_month_after(received, NEW_YORK) == utc("2026-03-01T04:59:59.999999Z")  # end of 28 February, EST
    assert one_month_after(received, STOCKHOLM) == utc("2026-03-01T22:59:59.999999Z")  # end of 1 March, CET


def test_a_receipt_with_a_non_utc_offset_is_placed_on_its_local_date() -> None:
    received = datetime(2026, 1, 30, 19, 30, tzinfo=NEW_YORK)  # 00:30 UTC on 31 January, 01:30 in Stockholm
    assert one_month_after(received, STOCKHOLM) == utc("2026-02-28T22:59:59.999999Z")


def test_a_naive_receipt_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        one_month_after(datetime(2026, 1, 31, 10, 0), STOCKHOLM)


# --- daylight saving time in Stockholm, 2026: 29 March 02:00 → 03:00, 25 October 03:00 → 02:00 ---

def test_a_deadline_on_the_day_before_summer_time_ends_at_midnight_winter_time() -> None:
    assert one_month_after(utc("2026-02-28T12:00:00Z"), STOCKHOLM) == utc("2026-03-28T22:59:59.999999Z")


def test_a_deadline_after_the_march_change_ends_at_midnight_summer_time() -> None:
    assert one_month_after(utc("2026-03-10T12:00:00Z"), STOCKHOLM) == utc("2026-04-10T21:59:59.999999Z")


def test_a_request_received_on_the_march_change_day_is_dated_that_day() -> None:
    # 00:30 UTC is 01:30 CET, before the clocks jump; 01:30 UTC is 03:30 CEST, after.
    for received in (utc("2026-03-29T00:30:00Z"), utc("2026-03-29T01:30:00Z")):
        assert one_month_after(received, STOCKHOLM) == utc("2026-04-29T21:59:59.999999Z")


def test_a_deadline_on_the_october_change_day_ends_after_its_25_hours() -> None:
    # 25 October 2026 runs from 22:00 UTC on the 24th (CEST) to 23:00 UTC on the 25th (CET).
    assert one_month_after(utc("2026-09-25T10:00:00Z"), STOCKHOLM) == utc("2026-10-25T22:59:59.999999Z")


def test_both_passes_through_the_repeated_october_hour_are_the_same_receipt_date() -> None:
    first_0230 = utc("2026-10-25T00:30:00Z")  # 02:30 CEST
    second_0230 = utc("2026-10-25T01:30:00Z")  # 02:30 CET
    assert one_month_after(first_0230, STOCKHOLM) == utc("2026-11-25T22:59:59.999999Z")
    assert one_month_after(second_0230, STOCKHOLM) == utc("2026-11-25T22:59:59.999999Z")


def test_the_receipt_date_changes_at_midnight_winter_time_after_the_october_change() -> None:
    assert one_month_after(utc("2026-10-25T22:59:59Z"), STOCKHOLM) == utc("2026-11-25T22:59:59.999999Z")
    assert one_month_after(utc("2026-10-25T23:00:00Z"), STOCKHOLM) == utc("2026-11-26T22:59:59.999999Z")


# --- other zones --------------------------------------------------------------------------------

def test_new_york_deadline_on_its_spring_change_day_ends_at_midnight_daylight_time() -> None:
    # New York moved to EDT (-04:00) on 8 March 2026.
    assert one_month_after(utc("2026-02-08T15:00:00Z"), NEW_YORK) == utc("2026-03-09T03:59:59.999999Z")


def test_reykjavik_deadline_ends_at_midnight_utc() -> None:
    assert one_month_after(utc("2026-01-31T23:59:59Z"), REYKJAVIK) == utc("2026-02-28T23:59:59.999999Z")


def test_a_day_whose_next_midnight_is_skipped_ends_when_the_clocks_jump() -> None:
    # Santiago jumps from 00:00 -04:00 to 01:00 -03:00 on 6 September 2026 (04:00 UTC).
    assert one_month_after(utc("2026-08-05T15:00:00Z"), SANTIAGO) == utc("2026-09-06T03:59:59.999999Z")
    assert one_month_after(utc("2026-08-06T15:00:00Z"), SANTIAGO) == utc("2026-09-07T02:59:59.999999Z")


@pytest.mark.parametrize("zone", ["Europe/Stockholm", "America/New_York", "America/Santiago", "Australia/Lord_Howe"])
@pytest.mark.parametrize("received_on", [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 8), date(2026, 3, 29),
                                         date(2026, 8, 5), date(2026, 9, 25), date(2026, 10, 4), date(2026, 10, 31)])
def test_every_deadline_is_the_last_microsecond_of_a_local_day(zone: str, received_on: date) -> None:
    tz = time_zone(zone)
    due = one_month_after(datetime.combine(received_on, time(12), tzinfo=tz).astimezone(UTC), tz)
    local = due.astimezone(tz)
    next_day = (due + MICROSECOND).astimezone(tz)
    assert local.time() == time(23, 59, 59, 999999)
    assert next_day.date() == local.date() + timedelta(days=1)
    assert next_day.time() in (time(0), time(1))  # 01:00 only where the midnight is skipped


# --- extensions ---------------------------------------------------------------------------------

def test_an_extension_across_the_march_change_ends_at_midnight_summer_time() -> None:
    due = utc("2026-03-28T22:59:59.999999Z")  # end of 28 March, CET
    assert extended(due, 1, STOCKHOLM) == utc("2026-03-29T21:59:59.999999Z")  # end of 29 March, CEST: 23 hours on


def test_an_extension_across_the_october_change_ends_at_midnight_winter_time() -> None:
    due = utc("2026-10-20T21:59:59.999999Z")  # end of 20 October, CEST
    assert extended(due, 10, STOCKHOLM) == utc("2026-10-30T22:59:59.999999Z")  # end of 30 October, CET


def test_the_longest_extension_is_61_days() -> None:
    due = utc("2026-02-28T22:59:59.999999Z")  # end of 28 February
    assert extended(due, 61, STOCKHOLM) == utc("2026-04-30T21:59:59.999999Z")  # end of 30 April


def test_an_extension_counts_from_the_local_date_not_the_utc_date() -> None:
    due = utc("2026-03-01T04:59:59.999999Z")  # end of 28 February in New York, already 1 March in UTC
    assert extended(due, 1, NEW_YORK) == utc("2026-03-02T04:59:59.999999Z")  # end of 1 March, EST


@pytest.mark.parametrize("days", [0, -1, 62, True])
def test_an_extension_outside_1_to_61_days_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="1 to 61 days"):
        extended(utc("2026-02-28T22:59:59.999999Z"), days, STOCKHOLM)


# --- overdue ------------------------------------------------------------------------------------

def test_a_reply_at_the_last_instant_is_in_time() -> None:
    due = utc("2026-03-29T21:59:59.999999Z")
    assert not is_overdue(due, due - timedelta(hours=1))
    assert not is_overdue(due, due)


def test_a_reply_one_microsecond_after_the_deadline_is_overdue() -> None:
    due = utc("2026-03-29T21:59:59.999999Z")
    assert is_overdue(due, due + MICROSECOND)


def test_overdue_compares_instants_not_wall_clocks() -> None:
    due = utc("2026-03-29T21:59:59.999999Z")
    assert is_overdue(due, datetime(2026, 3, 30, 0, 0, tzinfo=STOCKHOLM))
    assert not is_overdue(due, datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=STOCKHOLM))


# --- time zones ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Europe/Stokholm", "Mars/Olympus_Mons", "Europe", "", "../etc/passwd",
                                  "/etc/localtime"])
def test_an_unknown_time_zone_is_a_value_error_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown time zone {name!r}")):
        time_zone(name)
