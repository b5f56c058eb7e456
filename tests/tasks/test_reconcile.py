"""Reconciling consent with connected systems: a system's marketing opt-in state compared
with the ledger, against a fake Voyado Engage tenant (tests/connectors/voyado_fake.py),
from the CLI, the API and the scheduled job."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from api.db import db
from api.services import current, unit_of_work
from privacy.apikeys import create_key
from privacy.connectors.registry import CONNECTOR_CLASSES
from privacy.connectors.webhook import WebhookConnector
from privacy.context import utcnow
from privacy.storage.models import AuditEntry, ReconcileRun, RequestTask
from privacy.storage.repositories.subjects import SubjectRepository
from privacy.tasks.reconcile import Reconciler
from retention.jobs import reconcile_connectors
from tests.conftest import local_path
from tests.connectors.voyado_fake import API_KEY, VoyadoFake
from tests.fakes import Fault
from tests.tasks.conftest import Fanout

ANNA = "anna@example.se"
BO = "bo@example.se"
CARL = "carl@example.se"
EMAILS = (ANNA, BO, CARL)


@pytest.fixture
def engage(monkeypatch: pytest.MonkeyPatch) -> Iterator[VoyadoFake]:
    monkeypatch.setenv("VOYADO_API_KEY", API_KEY)
    fake = VoyadoFake()
    yield fake
    fake.close()


def voyado(engage: VoyadoFake, **extra: Any) -> dict[str, Any]:
    return {"name": "engage", "type": "voyado", "operations": ["consent"], "base_url": engage.url,
            "api_key_env": "VOYADO_API_KEY", "purposes": ["marketing_email"], "timeout_s": 2,
            "retry": {"initial_delay_s": 10, "max_delay_s": 60, "deadline_hours": 1}, **extra}


def subscribed(engage: VoyadoFake, email: str, accepts: bool = True) -> str:
    contact = engage.add(email)
    engage.contacts[contact]["preferences"]["acceptsEmail"] = accepts
    return contact


def granted(app: Fanout, email: str) -> str:
    """A member whose marketing_email consent is granted (the double opt-in link posted)."""
    subject = app.sign_up(email)
    (mail,) = app.mailbox.to(email)
    assert app.client.post(local_path(app.mailbox.link(mail, "/confirm/"))).status_code == 200
    return subject


def withdrawn(app: Fanout, email: str) -> str:
    """A member who withdrew marketing_email (its consent task already pushed and done)."""
    subject = app.sign_up(email)
    answer = app.client.post("/v1/consents", headers=app.writer, json={
        "subject_id": subject, "purposes": {"marketing_email": False}, "notice_version": "2026-11-01",
        "source": {"form": "preferences", "channel": "web"}})
    assert answer.status_code in (200, 201), answer.json
    return subject


def reconcile(app: Fanout, repair: bool = False) -> dict[str, Any]:
    with app.app.app_context():
        ctx = current()
        return Reconciler(ctx).run(repair, ctx.clock(), actor="test").as_dict()


def cli(app: Fanout, *args: str) -> Any:
    return app.app.test_cli_runner().invoke(args=["connectors", *args])


def consent_tasks(app: Fanout) -> list[Any]:
    with app.app.app_context():
        try:
            return list(db.session.execute(select(RequestTask).where(RequestTask.operation == "consent")).scalars())
        finally:
            db.session.remove()


def admin_key(app: Fanout) -> dict[str, str]:
    with app.app.app_context(), unit_of_work() as session:
        _, token = create_key(session, "operator", ["admin"], "test", utcnow())
    return {"Authorization": f"Bearer {token}"}


# --- comparing ---------------------------------------------------------------------------

def test_no_drift_when_the_system_agrees_with_the_ledger(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    anna = granted(app, ANNA)
    withdrawn(app, BO)
    app.run()  # Bo's withdrawal reaches Engage
    subscribed(engage, ANNA)
    subscribed(engage, BO, accepts=False)
    report = reconcile(app)
    engage_report = report["systems"]["engage"]
    assert engage_report["purposes"] == ["marketing_email"]
    assert (engage_report["checked"], engage_report["held"], engage_report["drifts"]) == (2, 2, [])
    assert report["totals"]["drifts"] == 0 and report["totals"]["errors"] == 0
    assert anna


def test_subscribed_where_withdrawn_is_reported_and_repair_pushes_our_withdrawal(fanout_app: Any,
                                                                               engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    bo = withdrawn(app, BO)
    app.run()  # Engage does not hold Bo yet: the push finds no contact
    contact = subscribed(engage, BO)  # ... then an import subscribes him again: a violation in progress
    report = reconcile(app)
    assert report["systems"]["engage"]["drifts"] == [{"subject_id": bo, "kind": "subscribed_but_withdrawn"}]
    assert report["systems"]["engage"]["repaired"] == 0
    assert [t.status for t in consent_tasks(app)] == ["succeeded"]  # a report alone plans nothing

    repaired = reconcile(app, repair=True)
    assert repaired["systems"]["engage"]["repaired"] == 1 and repaired["totals"]["repaired"] == 1
    assert reconcile(app, repair=True)["systems"]["engage"]["repaired"] == 0  # one push waits already
    assert app.run() == 1
    assert engage.contacts[contact]["preferences"]["acceptsEmail"] is False
    after = reconcile(app)
    assert after["systems"]["engage"]["drifts"] == [] and after["totals"]["drifts"] == 0


def test_a_lost_opt_in_is_reported_and_never_repaired(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    anna = granted(app, ANNA)
    contact = subscribed(engage, ANNA, accepts=False)
    report = reconcile(app, repair=True)
    assert report["systems"]["engage"]["drifts"] == [{"subject_id": anna, "kind": "withdrawn_but_granted"}]
    assert report["systems"]["engage"]["withdrawn_but_granted"] == 1
    assert report["systems"]["engage"]["repaired"] == 0
    assert consent_tasks(app) == []
    assert app.run() == 0
    assert engage.contacts[contact]["preferences"]["acceptsEmail"] is False


def test_a_restricted_member_subscribed_is_a_drift(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    anna = granted(app, ANNA)
    subscribed(engage, ANNA)
    with app.app.app_context(), unit_of_work() as session:
        SubjectRepository(session).set_restricted(anna, True, utcnow())
    report = reconcile(app)
    assert report["systems"]["engage"]["drifts"] == [{"subject_id": anna, "kind": "subscribed_but_withdrawn"}]


def test_a_person_the_system_does_not_hold_is_no_drift(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    granted(app, ANNA)
    withdrawn(app, BO)
    report = reconcile(app)
    system = report["systems"]["engage"]
    assert (system["checked"], system["held"], system["drifts"], system["errors"]) == (2, 0, [], 0)


def test_erased_members_are_not_looked_up(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    app.sign_up(ANNA)
    app.verified("erasure", ANNA)
    app.run()
    engage.system.seen.clear()
    report = reconcile(app)
    assert report["systems"]["engage"]["checked"] == 0
    assert engage.system.seen == []


def test_without_a_purposes_setting_every_consent_purpose_counts(fanout_app: Any, engage: VoyadoFake) -> None:
    entry = voyado(engage)
    del entry["purposes"]
    app: Fanout = fanout_app([entry])
    bo = withdrawn(app, BO)  # no purpose with the legal basis consent is granted
    subscribed(engage, BO)
    report = reconcile(app)
    assert report["systems"]["engage"]["purposes"] == ["marketing_email", "profiling", "sms", "targeted_ads"]
    assert report["systems"]["engage"]["drifts"] == [{"subject_id": bo, "kind": "subscribed_but_withdrawn"}]


def test_look_up_errors_are_counted_with_the_reason_and_the_walk_goes_on(fanout_app: Any,
                                                                        engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    for email in EMAILS:
        withdrawn(app, email)
    for email in EMAILS:
        subscribed(engage, email)
    subscribed(engage, BO)  # two contacts with Bo's address: Engage answers 409 MultipleMatches
    report = reconcile(app)
    system = report["systems"]["engage"]
    assert (system["checked"], system["held"], system["errors"]) == (3, 2, 1)
    [reason] = system["error_reasons"]
    assert "409" in reason and BO not in reason
    assert system["subscribed_but_withdrawn"] == 2 and report["totals"]["errors"] == 1
    assert system["stopped"] is None


def test_a_system_that_only_fails_is_given_up_for_the_run(fanout_app: Any, engage: VoyadoFake,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("privacy.tasks.reconcile.STOP_AFTER_ERRORS", 2)
    app: Fanout = fanout_app([voyado(engage)])
    for email in EMAILS:
        withdrawn(app, email)
    engage.system.fail_next(*[Fault(401, {"message": "Authorization has been denied"})] * 5)
    report = reconcile(app)
    system = report["systems"]["engage"]
    assert (system["checked"], system["errors"]) == (2, 2)
    assert system["stopped"] and "not asked further" in system["stopped"]


def test_systems_that_cannot_tell_are_skipped_with_why(fanout_app: Any, engage: VoyadoFake) -> None:
    hook = {"name": "crm", "type": "webhook", "url": engage.url + "/privacy", "secret_env": "TEST_WEBHOOK_SECRET"}
    no_consent = voyado(engage, name="engage-erasure", operations=["erasure"])
    app: Fanout = fanout_app([hook, no_consent])
    report = reconcile(app)
    assert report["systems"] == {}
    assert "cannot tell" in report["skipped"]["crm"]
    assert "consent" in report["skipped"]["engage-erasure"]


# --- stored, audited, no personal data ------------------------------------------------------

def test_every_run_is_stored_and_audited_with_counts_and_no_address(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    withdrawn(app, BO)
    app.run()  # the withdrawal's own push (Engage did not hold him yet)
    subscribed(engage, BO)
    report = reconcile(app, repair=True)
    with app.app.app_context():
        try:
            [run] = db.session.execute(select(ReconcileRun)).scalars()
            [entry] = db.session.execute(select(AuditEntry).where(
                AuditEntry.action == "connectors.reconciled")).scalars()
            stored, details = run.report, entry.details
        finally:
            db.session.remove()
    assert run.id == report["id"] and run.repair is True
    assert json.loads(stored)["totals"] == report["totals"]
    assert entry.target == report["id"] and entry.actor == "test"
    audited = json.loads(details)
    assert audited["subscribed_but_withdrawn"] == 1 and audited["repaired"] == 1
    assert audited["systems"]["engage"] == {"checked": 1, "held": 1, "drifts": 1, "errors": 0, "repaired": 1}
    for text in (stored, details):
        assert BO not in text and "@" not in text


# --- the CLI ----------------------------------------------------------------------------

def test_cli_reconcile_prints_each_drift_then_counts(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    bo = withdrawn(app, BO)
    anna = granted(app, ANNA)
    app.run()
    subscribed(engage, BO)
    subscribed(engage, ANNA, accepts=False)
    result = cli(app, "reconcile")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sorted(lines[:2]) == sorted([f"engage {bo} subscribed_but_withdrawn",
                                        f"engage {anna} withdrawn_but_granted"])
    assert "engage: checked 2, held 2, subscribed_but_withdrawn 1, withdrawn_but_granted 1, errors 0, repaired 0" \
        in lines
    assert lines[-1].startswith("total: systems 1, checked 2, held 2, drifts 2")
    assert "@" not in result.output
    assert [t.status for t in consent_tasks(app)] == ["succeeded"]  # a report alone plans nothing

    repaired = cli(app, "reconcile", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "repaired 1" in repaired.output and "@" not in repaired.output
    assert app.run() == 1


def test_cli_test_prints_ok_or_the_reason_and_exits_1(fanout_app: Any, engage: VoyadoFake,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    ok = cli(app, "test", "engage")
    assert ok.exit_code == 0 and ok.output.startswith("ok: API key accepted"), ok.output
    monkeypatch.setenv("VOYADO_API_KEY", "wrong")
    refused = cli(app, "test", "engage")
    assert refused.exit_code == 1 and "401" in refused.output, refused.output
    unknown = cli(app, "test", "nothing")
    assert unknown.exit_code == 1 and "nothing" in unknown.output


def test_cli_list_names_each_system(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    result = cli(app, "list")
    assert result.exit_code == 0
    [line] = result.output.splitlines()
    assert line.split()[:3] == ["engage", "voyado", "consent"] and "waiting 0" in line and "failed 0" in line


# --- the API and the job ------------------------------------------------------------------

def test_api_runs_and_lists_reconciliations_with_scopes(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    bo = withdrawn(app, BO)
    app.run()
    subscribed(engage, BO)
    admin = admin_key(app)
    url = "/v1/connectors/reconciliations"
    assert app.client.get(url, headers=app.officer).json == {"runs": []}
    assert app.client.post(url, headers=app.officer, json={"repair": True}).status_code == 403
    assert app.client.get(url, headers=app.writer).status_code == 403
    assert app.client.get(url).status_code == 401
    first = app.client.post(url, headers=admin, json={})
    assert first.status_code == 200, first.json
    assert first.json["repair"] is False
    assert first.json["systems"]["engage"]["drifts"] == [{"subject_id": bo, "kind": "subscribed_but_withdrawn"}]
    app.clock.advance(60)
    second = app.client.post(url, headers=admin, json={"repair": True})
    assert second.status_code == 200 and second.json["totals"]["repaired"] == 1
    runs = app.client.get(url, headers=app.officer).json["runs"]
    assert [r["id"] for r in runs] == [second.json["id"], first.json["id"]]
    assert runs[0] == {k: second.json[k] for k in runs[0]}
    assert "@" not in json.dumps(runs)


def test_the_daily_job_reports_and_repairs_nothing(fanout_app: Any, engage: VoyadoFake) -> None:
    app: Fanout = fanout_app([voyado(engage)])
    withdrawn(app, BO)
    app.run()
    subscribed(engage, BO)
    with app.app.app_context():
        assert reconcile_connectors(current(), app.clock()) == 1
    assert [t.status for t in consent_tasks(app)] == ["succeeded"]
    runs = app.client.get("/v1/connectors/reconciliations", headers=app.officer).json["runs"]
    assert len(runs) == 1 and runs[0]["repair"] is False


def test_the_job_does_nothing_without_a_system_to_compare(fanout_app: Any) -> None:
    app: Fanout = fanout_app([])
    with app.app.app_context():
        assert reconcile_connectors(current(), app.clock()) == 0
    assert app.client.get("/v1/connectors/reconciliations", headers=app.officer).json == {"runs": []}


def test_a_connector_that_cannot_tell_after_all_stops_its_system(fanout_app: Any, engage: VoyadoFake,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class Undecided(WebhookConnector):
        def opt_in(self, email: str) -> bool | None:
            raise NotImplementedError

    monkeypatch.setitem(CONNECTOR_CLASSES, "webhook", Undecided)
    hook = {"name": "crm", "type": "webhook", "url": engage.url + "/privacy", "secret_env": "TEST_WEBHOOK_SECRET",
            "operations": ["consent"]}
    app: Fanout = fanout_app([hook])
    withdrawn(app, BO)
    system = reconcile(app)["systems"]["crm"]
    assert (system["checked"], system["errors"], system["stopped"]) == (
        0, 0, "this system cannot tell its opt-in state")
