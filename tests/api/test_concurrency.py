"""Two worker processes recording at once: nothing is lost, the ledger stays one chain."""
from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from flask import Flask

from tests.conftest import MASTER_KEY, SIGNUP


def _worker(config: dict[str, Any], token: str, prefix: str, count: int, queue: Any) -> None:
    from api import create_app

    app = create_app(config)
    client = app.test_client()
    statuses = []
    for i in range(count):
        email = "shared@example.se" if i % 5 == 0 else f"{prefix}{i}@example.se"
        purposes = {"profiling": i % 2 == 0, "loyalty_club": True}
        body = {**SIGNUP, "subject": {**SIGNUP["subject"], "email": email}, "purposes": purposes}
        statuses.append(client.post("/v1/consents", json=body, headers={"Authorization": f"Bearer {token}"})
                        .status_code)
    queue.put(statuses)


@pytest.mark.slow
def test_two_processes_recording_at_once_lose_nothing(app: Flask, auth: Any, admin: dict[str, str]) -> None:
    token = auth("consent:write")["Authorization"].split()[1]
    config = {"INSTANCE_DIR": app.instance_path, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
              "MASTER_KEY": MASTER_KEY, "PUBLIC_URL": "http://privacy.test"}
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(config, token, p, 40, queue)) for p in ("a", "b")]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert all(status == 201 for statuses in results for status in statuses), results
    client = app.test_client()
    verify = client.get("/v1/audit/verify", headers=admin).json
    assert verify["ok"] is True
    check = client.post("/v1/consents/check", headers=auth("consent:read"), json={
        "purpose": "loyalty_club", "emails": [f"{p}{i}@example.se" for p in "ab" for i in range(40) if i % 5]
        + ["shared@example.se"]})
    assert len(check.json["allowed"]) == 2 * 32 + 1 and check.json["denied"] == []


def _twice_at_once(app: Flask, target: Any, *args: Any) -> list[tuple[int, str | None]]:
    """Run ``target(config, *args, start, queue)`` in two new processes released at the same
    moment (a link clicked twice); their answers, (status, error code), sorted."""
    config = {"INSTANCE_DIR": app.instance_path, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
              "MASTER_KEY": MASTER_KEY, "PUBLIC_URL": "http://privacy.test"}
    ctx = multiprocessing.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Barrier(2)
    workers = [ctx.Process(target=target, args=(config, *args, start, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    results = sorted(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=30)
    return results


def _verifier(config: dict[str, Any], request_id: str, token: str, start: Any, queue: Any) -> None:
    from api import create_app

    client = create_app(config).test_client()
    start.wait(timeout=60)
    r = client.post(f"/v1/requests/{request_id}/verify", json={"token": token})
    queue.put((r.status_code, (r.get_json() or {}).get("error", {}).get("code")))


@pytest.mark.slow
def test_two_clicks_on_one_verification_link_verify_once(app: Flask, officer: dict[str, str]) -> None:
    from urllib.parse import parse_qs, urlsplit

    from tests.conftest import Mailbox

    client = app.test_client()
    opened = client.post("/v1/requests", json={"type": "restriction", "email": "anna@example.se"}).get_json()
    mailbox = Mailbox(app)
    link = mailbox.link(mailbox.to("anna@example.se")[-1], "/verify?")
    token = parse_qs(urlsplit(link).query)["token"][0]
    assert _twice_at_once(app, _verifier, opened["id"], token) == [(200, None), (409, "token_used")]
    view = client.get(f"/v1/requests/{opened['id']}", headers=officer).get_json()
    assert [h["action"] for h in view["history"]].count("request.verified") == 1


def _confirmer(config: dict[str, Any], link: str, start: Any, queue: Any) -> None:
    from api import create_app

    client = create_app(config).test_client()
    start.wait(timeout=60)
    r = client.post(link, headers={"Accept": "application/json"})
    queue.put((r.status_code, (r.get_json() or {}).get("error", {}).get("code")))


@pytest.mark.slow
def test_two_clicks_on_one_confirm_link_confirm_once(app: Flask, writer: dict[str, str],
                                                     reader: dict[str, str]) -> None:
    from tests.conftest import Mailbox, local_path

    client = app.test_client()
    sid = client.post("/v1/consents", json=SIGNUP, headers=writer).get_json()["subject_id"]
    mailbox = Mailbox(app)
    link = local_path(mailbox.link(mailbox.to(SIGNUP["subject"]["email"])[-1], "/confirm/"))
    assert _twice_at_once(app, _confirmer, link) == [(200, None), (410, "token_used")]
    events = client.get(f"/v1/subjects/{sid}/consents/history", headers=reader).get_json()["events"]
    assert [e["event"] for e in events if e["purpose"] == "marketing_email"] == ["granted", "confirmed"]
