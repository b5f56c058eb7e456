"""``klaviyo``: Klaviyo's JSON:API (revision pinned to the description the tests use).

A person is the profile found by ``filter=equals(email,"…")``. Erasure is a data-privacy
deletion job, which Klaviyo runs later and never reports on: its outcome is ``accepted``.
Consent withdrawal is an unsubscribe job, sent only for a profile that exists, because for
an unknown address Klaviyo would create a profile just to unsubscribe it. Settings:
``base_url`` (default https://a.klaviyo.com), ``api_key_env`` (a private API key) and
``fields`` (our field name → profile attribute; ``location.zip`` names a nested one).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from privacy.connectors.base import Connector, ConnectorError, Result, TaskCall
from privacy.connectors.http import Http
from privacy.connectors.vendor import base_url, field_map, json_object, mapped_changes
from privacy.policy.file import ConnectorDef

DEFAULT_BASE_URL = "https://a.klaviyo.com"
REVISION = "2026-07-15"
JSON_API = "application/vnd.api+json"
DEFAULT_FIELDS = {"email": "email", "first_name": "first_name", "last_name": "last_name",
                  "phone": "phone_number", "postal_code": "location.zip", "country": "location.country"}


def email_filter(email: str) -> str:
    """The ``filter`` parameter matching one address, its quotes and backslashes escaped."""
    escaped = email.replace("\\", "\\\\").replace('"', '\\"')
    return f'equals(email,"{escaped}")'


class KlaviyoConnector(Connector):
    type = "klaviyo"
    supported = frozenset({"access", "erasure", "rectification", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        self.base_url = base_url(self.name, "base_url", self.setting("base_url", DEFAULT_BASE_URL))
        self.setting("api_key_env", required=True)
        self.fields = field_map(self.name, DEFAULT_FIELDS, self.setting("fields"))
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight,
                         headers={"revision": REVISION, "Accept": JSON_API})

    def _call(self, method: str, path: str, known: tuple[str, ...], *, idempotency_key: str | None = None,
              **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Klaviyo-API-Key {self.secret('api_key_env')}"}
        if "json" in kwargs:
            headers["Content-Type"] = JSON_API
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.call(method, self.base_url + path, known=known, headers=headers, **kwargs)

    def profiles(self, email: str, *, subscriptions: bool = False) -> list[dict[str, Any]]:
        """The profiles with this e-mail (at most one in practice)."""
        params = {"filter": email_filter(email)}
        if subscriptions:
            params["additional-fields[profile]"] = "subscriptions"
        answer = self._call("GET", "/api/profiles", (email,), params=params)
        data = json_object(self.name, answer).get("data") or []
        return [p for p in data if isinstance(p, dict) and p.get("id")]

    # --- operations -------------------------------------------------------------------

    def run(self, call: TaskCall) -> Result:
        profiles = self.profiles(call.email, subscriptions=call.operation == "access")
        if not profiles:
            return Result(outcome="not_found", data={} if call.operation == "access" else None)
        if call.operation == "access":
            return Result(outcome="done", data={"profiles": [
                {"id": p["id"], "attributes": p.get("attributes") or {}} for p in profiles]})
        if call.operation == "erasure":
            return self._delete(call, profiles)
        if call.operation == "consent":
            return self._unsubscribe(call, profiles)
        if call.operation == "rectification":
            return self._rectify(call, profiles)
        raise ConnectorError(f"{self.name} does not take {call.operation}", retryable=False)

    def _delete(self, call: TaskCall, profiles: list[dict[str, Any]]) -> Result:
        for profile in profiles:
            body = {"data": {"type": "data-privacy-deletion-job", "attributes": {
                "profile": {"data": {"type": "profile", "id": profile["id"], "attributes": {}}}}}}
            answer = self._call("POST", "/api/data-privacy-deletion-jobs", (call.email,), json=body,
                                idempotency_key=call.id)
        return Result(outcome="accepted", http_status=answer.status_code)

    def _unsubscribe(self, call: TaskCall, profiles: list[dict[str, Any]]) -> Result:
        """An unsubscribe job for marketing e-mail, for the address of the profile found
        (no list given: Klaviyo then unsubscribes globally). It runs later: ``accepted``."""
        body = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": {"email": call.email,
                                               "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}
        ]}}}}
        answer = self._call("POST", "/api/profile-subscription-bulk-delete-jobs", (call.email,), json=body,
                            idempotency_key=call.id)
        return Result(outcome="accepted", http_status=answer.status_code)

    def _rectify(self, call: TaskCall, profiles: list[dict[str, Any]]) -> Result:
        attributes: dict[str, Any] = {}
        for path, value in mapped_changes(self.type, call.changes, self.fields).items():
            target = attributes
            *parents, leaf = path.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        known = (call.email, *call.changes.values())
        for profile in profiles:
            body = {"data": {"type": "profile", "id": profile["id"], "attributes": attributes}}
            answer = self._call("PATCH", f"/api/profiles/{quote(str(profile['id']), safe='')}", known, json=body,
                                idempotency_key=call.id)
        return Result(outcome="done", http_status=answer.status_code)

    def opt_in(self, email: str) -> bool | None:
        """Whether the profile's marketing e-mail consent is ``SUBSCRIBED``."""
        profiles = self.profiles(email, subscriptions=True)
        if not profiles:
            return None
        attributes = profiles[0].get("attributes") or {}
        marketing = (((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
        return marketing.get("consent") == "SUBSCRIBED"

    def test_connection(self) -> str:
        self._call("GET", "/api/accounts", ())
        return f"{self.base_url}: account readable with the key in {self.setting('api_key_env')}"
