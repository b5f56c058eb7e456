"""The fan-out as customers, officers and connected systems see it: every request and
consent change reaches every system, durably, with retries, and each system's answer shows."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from privacy.crypto.keys import verify_jws
from tests.fakes import FakeSystem, Fault
from tests.tasks.conftest import SECRET, Fanout, webhook

ANNA = "anna@example.se"


def _calls(fake: FakeSystem) -> list[dict[str, Any]]:
    return [s.json() for s in fake.requests_to("POST", "/privacy")]


def test_a_verified_erasure_reaches_the_system_signed_and_the_request_completes(fanout_app: Any,
                                                                                fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    subject = app.sign_up()
    request_id = app.verified("erasure")
    assert app.systems(request_id)["crm"]["status"] == "pending"
    assert app.run() == 1
    [seen] = fake.requests_to("POST", "/privacy")
    body = seen.json()
    assert body["operation"] == "erasure" and body["request_id"] == request_id
    # The subject's key was destroyed by the local erasure before the task ran: the task
    # still knew whom to look for, from its own sealed copy.
    assert body["subject"] == {"subject_id": subject, "email": ANNA}
    expected = "sha256=" + hmac.new(SECRET.encode(), seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["X-Privacy-Signature"] == expected
    assert seen.headers["Idempotency-Key"] == body["id"]
    view = app.request(request_id)
    assert view["status"] == "completed"
    crm = app.systems(request_id)["crm"]
    assert (crm["status"], crm["outcome"], crm["attempts"]) == ("succeeded", "done", 1)
    actions = [h["action"] for h in view["history"]]
    assert "task.succeeded" in actions and actions.index("task.succeeded") < actions.index("request.completed")


def test_the_erasure_receipt_is_mailed_signed_and_names_each_system_and_no_address(fanout_app: Any,
                                                                                  fake: FakeSystem) -> None:
    fake.route("POST", "/gone", (200, {"outcome": "not_found"}, {}))
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy"), webhook("shop", fake.url + "/gone")])
    subject = app.sign_up()
    request_id = app.verified("erasure")
    app.run()
    text = app.mailbox.body(app.mailbox.to(ANNA)[-1])
    receipt = next(line for line in text.splitlines() if re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", line.strip()))
    keys = app.client.get("/v1/receipts/keys").json["keys"]
    claims = verify_jws(receipt.strip(), keys[0]["x"])
    assert claims["type"] == "erasure-receipt" and claims["request"] == request_id
    assert claims["subject_id"] == subject
    assert {s["name"]: s["outcome"] for s in claims["systems"]} == {"privacy-service": "done", "crm": "done",
                                                                    "shop": "not_found"}
    assert ANNA not in json.dumps(claims)
    assert "- shop: not_found" in text


def test_a_5xx_is_retried_later_with_the_same_task_id_and_then_succeeds(fanout_app: Any, fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(503, {"error": f"down for {ANNA}"}))
    request_id = app.verified("erasure")
    app.run()
    crm = app.systems(request_id)["crm"]
    assert (crm["status"], crm["attempts"], crm["last_error"]) == ("pending", 1, "crm answered 503")
    assert app.run() == 0  # not due yet: backoff of at least initial_delay_s
    app.clock.advance(61)
    assert app.run() == 1
    first, second = _calls(fake)
    assert first["id"] == second["id"]
    assert app.request(request_id)["status"] == "completed"


def test_429_waits_for_the_systems_retry_after(fanout_app: Any, fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(429, None, {"Retry-After": "120"}))
    request_id = app.verified("erasure")
    app.run()
    app.clock.advance(100)  # past max_delay_s (60), before Retry-After
    assert app.run() == 0
    app.clock.advance(21)
    assert app.run() == 1
    assert app.systems(request_id)["crm"]["status"] == "succeeded"


def test_a_refused_connection_and_a_timeout_are_retried(fanout_app: Any, fake: FakeSystem) -> None:
    closed = FakeSystem()
    closed.close()
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy", timeout_s=0.3),
                              webhook("old", closed.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(200, {}, {}, delay_s=1.0))
    request_id = app.verified("erasure")
    app.run()
    systems = app.systems(request_id)
    assert systems["crm"]["status"] == "pending" and "did not answer within 0.3 s" in systems["crm"]["last_error"]
    assert systems["old"]["status"] == "pending" and systems["old"]["last_error"] == "could not connect to old"


def test_a_4xx_fails_at_once_and_an_officer_retries_it_without_moving_the_deadline(fanout_app: Any,
                                                                                   fake: FakeSystem) -> None:
    fake.routes.clear()
    fake.route("POST", "/privacy", (200, {"data": {"tier": "gold"}}, {}))
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(400, {"error": "unknown field", "email": ANNA}))
    request_id = app.verified("access")
    app.run()
    view = app.request(request_id)
    assert view["status"] == "partially_completed"
    crm = app.systems(request_id)["crm"]
    assert crm["status"] == "failed" and crm["last_error"].startswith("crm refused the request (400)")
    assert ANNA not in crm["last_error"]
    retried = app.client.post(f"/v1/requests/{request_id}/systems/crm/retry", headers=app.officer)
    assert retried.status_code == 200 and retried.json["status"] == "pending"
    assert app.client.post(f"/v1/requests/{request_id}/systems/crm/retry", headers=app.officer).status_code == 409
    app.run()
    after = app.request(request_id)
    assert after["status"] == "completed" and after["due_at"] == view["due_at"]
    actions = [h["action"] for h in after["history"]]
    assert {"task.failed", "task.retry_requested", "request.in_progress", "task.succeeded"} <= set(actions)


def test_the_deadline_fails_a_task_that_never_succeeds(fanout_app: Any, fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy", retry={
        "initial_delay_s": 10, "max_delay_s": 60, "deadline_hours": 0.25})])
    app.sign_up()
    fake.fail_next(*[Fault(500) for _ in range(50)])
    request_id = app.verified("erasure")
    for _ in range(50):
        app.run()
        if app.systems(request_id)["crm"]["status"] == "failed":
            break
        app.clock.advance(61)
    crm = app.systems(request_id)["crm"]
    assert crm["status"] == "failed" and "deadline" in crm["last_error"]
    assert app.request(request_id)["status"] == "partially_completed"


def test_an_access_answer_goes_into_the_package_under_the_systems_name(fanout_app: Any, fake: FakeSystem) -> None:
    fake.routes.clear()
    fake.route("POST", "/privacy", (200, {"data": {"orders": [{"id": "A-1", "total": 129}]}}, {}))
    app: Fanout = fanout_app([webhook("shop", fake.url + "/privacy")])
    app.sign_up()
    request_id = app.verified("access")
    app.run()
    assert app.request(request_id)["status"] == "completed"
    package = app.client.get(f"/v1/requests/{request_id}/package", headers=app.officer)
    assert package.status_code == 200
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        data = json.loads(archive.read("data.json"))
        page = archive.read("index.html").decode()
    assert data["systems"]["shop"] == {"orders": [{"id": "A-1", "total": 129}]}
    assert "shop" in page and "A-1" in page


def test_a_withdrawal_is_pushed_to_every_system_that_takes_consent(fanout_app: Any, fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("esp", fake.url + "/privacy", operations=["consent"]),
                              webhook("crm", fake.url + "/privacy", operations=["erasure"])])
    subject = app.sign_up()
    answer = app.client.post("/v1/consents", headers=app.writer, json={
        "subject_id": subject, "purposes": {"marketing_email": False}, "notice_version": "2026-11-01",
        "source": {"form": "preferences", "channel": "web"}})
    assert answer.status_code in (200, 201), answer.json
    assert app.run() == 1
    [call] = _calls(fake)
    assert call["operation"] == "consent" and call["request_id"] is None
    assert call["purposes"] == {"marketing_email": "withdrawn"} and call["subject"]["email"] == ANNA


def test_no_more_than_max_in_flight_tasks_of_a_system_run_at_once(fanout_app: Any, fake: FakeSystem) -> None:
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow(_seen: Any) -> Any:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return 200, {}, {}

    fake.routes.clear()
    fake.route("POST", "/privacy", slow)
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy", max_in_flight=2)])
    for n in range(6):
        app.sign_up(f"member{n}@example.se")
        app.verified("erasure", f"member{n}@example.se")
    assert app.run() == 6
    assert state["peak"] == 2


def test_a_manual_system_mails_its_owner_and_waits_for_the_link(fanout_app: Any) -> None:
    app: Fanout = fanout_app([{"name": "paper-archive", "type": "manual", "owner_email": "archive@example.se"}])
    app.sign_up()
    request_id = app.verified("erasure")
    app.run()
    assert app.request(request_id)["status"] == "in_progress"
    app.mailbox.deliver()
    [mail] = app.mailbox.to("archive@example.se")
    text = app.mailbox.body(mail)
    assert ANNA in text and request_id in text
    due = app.request(request_id)["due_at"]  # the person has until the request is due, not 72 hours
    assert f"by {due[:10]} {due[11:16]} UTC" in text
    link = app.mailbox.link(mail, "/done?")
    path = link.split("privacy.test", 1)[1]
    assert app.client.get(path).status_code == 200
    assert app.request(request_id)["status"] == "in_progress"  # a GET (a mail scanner) confirms nothing
    assert app.client.post(path, headers={"Accept": "application/json"}).status_code == 200
    assert app.client.post(path, headers={"Accept": "application/json"}).status_code == 409
    assert app.request(request_id)["status"] == "completed"
    assert app.systems(request_id)["paper-archive"]["outcome"] == "done"
    [archive] = app.client.get("/v1/connectors", headers=app.officer).json["connectors"]
    assert archive["last_success_at"] and archive["waiting"] == 0


def test_officers_see_each_system_with_waiting_and_failed_tasks(fanout_app: Any, fake: FakeSystem) -> None:
    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(403, {"error": "forbidden"}))
    app.verified("access")
    app.run()
    answer = app.client.get("/v1/connectors", headers=app.officer)
    assert answer.status_code == 200
    [crm] = answer.json["connectors"]
    assert (crm["name"], crm["type"], crm["failed"], crm["waiting"]) == ("crm", "webhook", 1, 0)
    assert crm["last_failure_at"] and crm["last_error"].startswith("crm refused")
    assert app.client.get("/v1/connectors").status_code == 401


def test_a_failed_task_keeps_whom_it_looks_for_for_30_days_then_forgets(fanout_app: Any, fake: FakeSystem) -> None:
    from retention.jobs import forget_finished_tasks

    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(400), Fault(400))
    request_id = app.verified("erasure")
    app.run()
    ctx = app.app.extensions["privacy"]
    with app.app.app_context():
        app.clock.advance(29 * 86400)
        assert forget_finished_tasks(ctx, app.clock()) == 0
    assert app.client.post(f"/v1/requests/{request_id}/systems/crm/retry", headers=app.officer).status_code == 200
    app.run()  # fails again
    with app.app.app_context():
        app.clock.advance(31 * 86400)
        assert forget_finished_tasks(ctx, app.clock()) == 1
    retried = app.client.post(f"/v1/requests/{request_id}/systems/crm/retry", headers=app.officer)
    assert retried.status_code == 409 and retried.json["error"]["code"] == "task_forgotten"


def test_a_pending_task_still_runs_after_the_master_key_is_rotated(fanout_app: Any, fake: FakeSystem,
                                                                   monkeypatch: Any) -> None:
    import base64
    import os

    app: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")])
    app.sign_up()
    fake.fail_next(Fault(503))
    app.verified("erasure")
    app.run()
    new_key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("NEW_MASTER", new_key)
    rotated = app.app.test_cli_runner().invoke(args=["keys", "rotate-master", "--new-key-env", "NEW_MASTER"])
    assert rotated.exit_code == 0, rotated.output
    later: Fanout = fanout_app([webhook("crm", fake.url + "/privacy")], MASTER_KEY=new_key)
    later.clock.advance(61)
    assert later.run() == 1
    assert len(_calls(fake)) == 2 and _calls(fake)[-1]["subject"]["email"] == ANNA
