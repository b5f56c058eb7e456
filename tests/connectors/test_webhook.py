"""The webhook protocol as a connected system sees it, against a fault-injecting fake."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from privacy.connectors.base import ConfigError, ConnectorError, TaskCall
from privacy.connectors.registry import build
from privacy.connectors.webhook import WebhookConnector
from privacy.policy.file import ConnectorDef
from tests.fakes import FakeSystem, Fault

ENV = {"HOOK_SECRET": "s3cret"}
EMAIL = "anna@example.se"


@pytest.fixture
def system() -> Iterator[FakeSystem]:
    fake = FakeSystem()
    fake.route("POST", "/hook", (200, {"ok": True}, {}))
    yield fake
    fake.close()


def hook(url: str, environ: dict[str, str] | None = None, **settings: Any) -> WebhookConnector:
    built = build(ConnectorDef("crm", "webhook", ("access", "erasure"), {}, 0.5,
                               {"url": url, "secret_env": "HOOK_SECRET", **settings}), ENV if environ is None
                  else environ)
    assert isinstance(built, WebhookConnector)
    return built


def call(operation: str = "erasure") -> TaskCall:
    return TaskCall(id="task-1", operation=operation, email=EMAIL, subject_id="s-1", request_id="r-1")


def test_the_body_is_signed_with_hmac_sha256_and_carries_the_stable_task_id(system: FakeSystem) -> None:
    hook(system.url + "/hook").run(call())
    hook(system.url + "/hook").run(call())
    first, second = system.seen
    assert first.body == second.body and first.json()["id"] == "task-1"
    digest = hmac.new(b"s3cret", first.body, hashlib.sha256).hexdigest()
    assert first.headers["X-Privacy-Signature"] == f"sha256={digest}"
    assert first.headers["X-Privacy-Timestamp"].isdigit() and first.headers["Idempotency-Key"] == "task-1"


@pytest.mark.parametrize(("fault", "retryable"), [
    (Fault(500), True), (Fault(503), True), (Fault(408), True), (Fault(429, None, {"Retry-After": "7"}), True),
    (Fault(400, {"error": f"bad {EMAIL}"}), False), (Fault(404), False), (Fault(410), False)])
def test_each_answer_is_retried_or_failed_by_the_protocols_rules(system: FakeSystem, fault: Fault,
                                                                 retryable: bool) -> None:
    system.fail_next(fault)
    with pytest.raises(ConnectorError) as raised:
        hook(system.url + "/hook").run(call())
    assert raised.value.retryable is retryable and raised.value.http_status == fault.status
    assert EMAIL not in raised.value.reason and EMAIL not in raised.value.excerpt
    if fault.status == 429:
        assert raised.value.retry_after == 7


def test_a_slow_answer_times_out_and_is_retried(system: FakeSystem) -> None:
    system.fail_next(Fault(200, {}, delay_s=1.0))
    with pytest.raises(ConnectorError) as raised:
        hook(system.url + "/hook").run(call())
    assert raised.value.retryable and "did not answer within 0.5 s" in raised.value.reason


def test_a_refused_connection_is_retried() -> None:
    closed = FakeSystem()
    closed.close()
    with pytest.raises(ConnectorError) as raised:
        hook(closed.url + "/hook").run(call())
    assert raised.value.retryable and raised.value.reason == "could not connect to crm"


def test_a_garbage_answer_to_an_access_fails_and_to_an_erasure_counts_as_done(system: FakeSystem) -> None:
    system.fail_next(Fault(200, b"<html>oops</html>"))
    with pytest.raises(ConnectorError) as raised:
        hook(system.url + "/hook").run(call("access"))
    assert not raised.value.retryable and "without a JSON object" in raised.value.reason
    system.fail_next(Fault(200, b"\xff\xfe garbage"))
    assert hook(system.url + "/hook").run(call("erasure")).outcome == "done"


def test_the_system_may_say_what_it_did_and_never_more(system: FakeSystem) -> None:
    system.fail_next(Fault(200, {"outcome": "not_found"}), Fault(200, {"outcome": "erased-everything"}))
    assert hook(system.url + "/hook").run(call()).outcome == "not_found"
    with pytest.raises(ConnectorError):
        hook(system.url + "/hook").run(call())


def test_a_missing_secret_is_named_and_an_address_that_is_not_http_is_refused(system: FakeSystem) -> None:
    with pytest.raises(ConnectorError) as raised:
        hook(system.url + "/hook", environ={}).run(call())
    assert not raised.value.retryable and "HOOK_SECRET" in raised.value.reason
    with pytest.raises(ConfigError, match=r"connectors\[crm\]\.url"):
        hook("ftp://crm.example.se")
