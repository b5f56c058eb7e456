"""One erasure, six connected systems, end to end through HTTP as a customer and an officer
would: verify, fan out, one system fails, the officer sees why and retries it, a manual
system is confirmed with a note, the request completes and the customer gets a receipt."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.connectors.salesforce_fake import CLIENT_ID, CLIENT_SECRET, SalesforceFake
from tests.connectors.voyado_fake import API_KEY, VoyadoFake
from tests.fakes import FakeSystem, Fault
from tests.tasks.conftest import Fanout, webhook

ANNA = "anna@example.se"


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SalesforceFake, VoyadoFake]]:
    monkeypatch.setenv("TEST_SF_ID", CLIENT_ID)
    monkeypatch.setenv("TEST_SF_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("TEST_VOYADO_KEY", API_KEY)
    sf, vo = SalesforceFake(), VoyadoFake()
    yield sf, vo
    sf.close()
    vo.close()


def test_an_erasure_reaches_six_systems_and_the_officer_retries_the_one_that_failed(
        fanout_app: Any, fake: FakeSystem, vendors: tuple[SalesforceFake, VoyadoFake]) -> None:
    sf, vo = vendors
    sf.add("Contact", Email=ANNA, FirstName="Anna", LastName="Lind")
    vo.add(ANNA, firstName="Anna")
    shop, loyalty = FakeSystem(), FakeSystem()  # each its own: the fault queued below is the crm's alone
    shop.route("POST", "/privacy", (200, {"outcome": "not_found"}, {}))
    loyalty.route("POST", "/privacy", (200, {}, {}))
    app: Fanout = fanout_app([
        webhook("crm", fake.url + "/privacy"), webhook("shop", shop.url + "/privacy"),
        webhook("loyalty", loyalty.url + "/privacy", operations=["erasure"]),
        {"name": "salesforce", "type": "salesforce", "base_url": sf.url, "client_id_env": "TEST_SF_ID",
         "client_secret_env": "TEST_SF_SECRET"},
        {"name": "voyado", "type": "voyado", "base_url": vo.url, "api_key_env": "TEST_VOYADO_KEY"},
        {"name": "paper-archive", "type": "manual", "owner_email": "archive@example.se"}])
    try:
        app.sign_up()
        fake.fail_next(Fault(422, {"error": "customer is locked by an open order"}))
        request_id = app.verified("erasure")
        app.run()
        view = app.request(request_id)
        assert view["status"] == "in_progress"  # the paper archive has not confirmed yet
        systems = app.systems(request_id)
        assert {n: s["status"] for n, s in systems.items()} == {
            "privacy-service": "succeeded", "crm": "failed", "shop": "succeeded", "loyalty": "succeeded",
            "salesforce": "succeeded", "voyado": "succeeded", "paper-archive": "in_progress"}
        assert {n: s["outcome"] for n, s in systems.items() if s["status"] == "succeeded"} == {
            "privacy-service": "done", "shop": "not_found", "loyalty": "done", "salesforce": "done",
            "voyado": "soft_deleted"}
        assert "locked by an open order" in systems["crm"]["last_error"]

        done = app.client.post(f"/v1/requests/{request_id}/systems/paper-archive/done", headers=app.officer,
                               json={"note": "Box 14 shredded by Eva"})
        assert done.status_code == 200 and done.json["outcome"] == "done"
        assert app.request(request_id)["status"] == "partially_completed"
        assert app.client.post(f"/v1/requests/{request_id}/systems/crm/retry", headers=app.officer).status_code == 200
        app.run()
        after = app.request(request_id)
        assert after["status"] == "completed" and after["due_at"] == view["due_at"]
        assert all(s["status"] == "succeeded" for s in after["systems"])
        assert not sf.records["Contact"] and vo.deleted
        app.mailbox.deliver()
        text = app.mailbox.body(app.mailbox.to(ANNA)[-1])
        assert "- voyado: soft_deleted" in text and "erasure receipt" in text
        notes = [h for h in after["history"] if h["action"] == "task.marked_done"]
        assert notes[0]["details"]["note"] == "Box 14 shredded by Eva"
    finally:
        shop.close()
        loyalty.close()
