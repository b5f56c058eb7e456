"""``webhook``: the project's own protocol (docs/api.md, "The webhook connector's protocol").

The service POSTs one JSON body per task, signed with HMAC-SHA256 under the secret that
``secret_env`` names; the task id is in the body and in ``Idempotency-Key``, the same on
every retry. An access answer's ``data`` object goes into the access package. A system
may say what it did with ``"outcome"`` (``done``, ``not_found``, ``accepted``,
``soft_deleted``); without one, a 2xx means ``done``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from privacy.connectors.base import OUTCOMES, ConfigError, Connector, ConnectorError, Result, TaskCall, excerpt
from privacy.connectors.http import Http
from privacy.policy.file import ConnectorDef


def signature(secret: str, body: bytes) -> str:
    """The ``X-Privacy-Signature`` header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookConnector(Connector):
    type = "webhook"
    supported = frozenset({"access", "erasure", "rectification", "restriction", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        self.url = self.setting("url", required=True)
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"connectors[{self.name}].url: an http:// or https:// address")
        self.setting("secret_env", required=True)
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight)

    def body(self, call: TaskCall) -> bytes:
        payload: dict[str, Any] = {
            "id": call.id, "request_id": call.request_id, "operation": call.operation,
            "subject": {"subject_id": call.subject_id, "email": call.email},
            "changes": dict(call.changes), "purposes": dict(call.purposes)}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    def run(self, call: TaskCall) -> Result:
        secret = self.secret("secret_env")
        body = self.body(call)
        answer = self.http.call("POST", self.url, data=body, known=(call.email, *call.changes.values()), headers={
            "Content-Type": "application/json", "X-Privacy-Signature": signature(secret, body),
            "X-Privacy-Timestamp": str(int(time.time())), "Idempotency-Key": call.id})
        parsed = _json(answer.content)
        if call.operation == "access" and not (isinstance(parsed, dict) and isinstance(parsed.get("data"), dict)):
            raise ConnectorError(f"{self.name} answered an access without a JSON object under 'data'",
                                 retryable=False, http_status=answer.status_code,
                                 excerpt=excerpt(answer.content, known=(call.email,)))
        outcome = parsed.get("outcome", "done") if isinstance(parsed, dict) else "done"
        if outcome not in OUTCOMES:
            raise ConnectorError(f"{self.name} answered an unknown outcome", retryable=False,
                                 http_status=answer.status_code, excerpt=excerpt(answer.content))
        data = parsed["data"] if call.operation == "access" else None
        return Result(outcome=outcome, data=data, http_status=answer.status_code,
                      excerpt=excerpt(answer.content, known=(call.email,)) if data is None else "")

    def test_connection(self) -> str:
        secret = self.secret("secret_env")
        body = json.dumps({"id": "test", "operation": "test"}, separators=(",", ":")).encode()
        answer = self.http.call("POST", self.url, data=body, ok=range(400, 500), headers={
            "Content-Type": "application/json", "X-Privacy-Signature": signature(secret, body),
            "X-Privacy-Timestamp": str(int(time.time()))})
        return f"{self.url} answered {answer.status_code}"


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None
