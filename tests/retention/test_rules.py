"""The retention decision for one subject, without a database."""
from __future__ import annotations

import datetime as dt

from privacy.policy.file import load_policy
from privacy.retention.rules import Rule, decide, rules_of
from privacy.storage.repositories.retention import StateRow

T = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
POLICY = load_policy()
PURPOSES = {p.code: p for p in POLICY.purposes}


def state(purpose: str, status: str) -> StateRow:
    return StateRow("s1", purpose, status, T, T if status == "granted" else None)


def test_delete_beats_anonymise_when_both_fire() -> None:
    rules = {r.purpose: r for r in rules_of(PURPOSES)}
    states = {"loyalty_club": state("loyalty_club", "granted"), "sms": state("sms", "withdrawn")}
    decision = decide(PURPOSES, rules, states, {"loyalty_club", "sms"}, {"email", "phone"}, set())
    assert (decision.action, decision.rule) == ("delete", "sms")
    only_club = decide(PURPOSES, rules, states, {"loyalty_club"}, {"email", "phone"}, set())
    assert (only_club.action, only_club.rule) == ("anonymise", "loyalty_club")


def test_a_granted_consent_keeps_the_subject_and_its_fields() -> None:
    rules = {r.purpose: r for r in rules_of(PURPOSES)}
    states = {"loyalty_club": state("loyalty_club", "granted"), "profiling": state("profiling", "granted")}
    decision = decide(PURPOSES, rules, states, {"loyalty_club"}, {"email", "birth_date", "first_name"}, set())
    assert decision.action is None and decision.drop == {"first_name"}
    assert decision.blame == {"first_name": "loyalty_club"}


def test_a_legal_hold_keeps_its_fields_in_place_while_the_subject_stays() -> None:
    rules = {r.purpose: r for r in rules_of(PURPOSES)}
    states = {"loyalty_club": state("loyalty_club", "granted"), "profiling": state("profiling", "granted")}
    decision = decide(PURPOSES, rules, states, {"loyalty_club"}, {"email", "first_name"}, {"first_name"})
    assert decision.drop == set()


def test_a_pending_consent_keeps_its_fields() -> None:
    states = {"marketing_email": state("marketing_email", "pending")}
    assert decide(PURPOSES, {}, states, set(), {"email", "first_name", "phone"}, set()).drop == {"phone"}


def test_a_cutoff_before_year_one_is_the_earliest_time() -> None:
    rule = Rule("sms", 30, "withdrawal", "delete")
    assert rule.cutoff(dt.datetime(1, 1, 2, tzinfo=dt.UTC)).year == 1
