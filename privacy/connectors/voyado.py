"""``voyado``: contacts in Voyado Engage (API v3; the e-mail preference through v2).

Engage wants three headers on every call (developer.voyado.com, "API authentication"):
``apikey``, a ``User-Agent`` of the form ``<System>/<version>``, and ``Content-Type:
application/json``, without which it answers 500. A person is found by e-mail
(``GET /api/v3/contacts/id``); two contacts with the same address (409 MultipleMatches)
fail the task, since acting on one of them would not be the whole answer.

Deleting a contact is a soft delete that Engage completes after a 7-day grace period, so
erasure reports ``soft_deleted``, never ``done``. A rectification sends only the changed,
non-empty fields: Engage overwrites a field with an empty value it is sent.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from privacy.connectors.base import ConfigError, Connector, ConnectorError, Result, Skip, TaskCall, excerpt
from privacy.connectors.http import Http
from privacy.connectors.vendor import field_map
from privacy.policy.file import ConnectorDef

DEFAULT_FIELDS = {"email": "email", "first_name": "firstName", "last_name": "lastName", "phone": "mobilePhone",
                  "postal_code": "zipCode", "country": "countryCode", "birth_date": "birthDay"}
DEFAULT_USER_AGENT = "PrivacyService/0.1"
# A syntactically valid address no contact can have: test_connection looks it up, so a 404
# ContactNotFound proves the key is accepted without touching anyone's data.
PROBE_EMAIL = "connection-test@privacy-service.invalid"
_USER_AGENT = re.compile(r"[A-Za-z0-9._-]+/[A-Za-z0-9._-]+( .*)?\Z")
_WITHDRAWN = ("withdrawn", "expired")
_GUID = re.compile(r"[0-9A-Fa-f-]{32,36}\Z")


class VoyadoConnector(Connector):
    type = "voyado"
    supported = frozenset({"access", "erasure", "rectification", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        base_url = self.setting("base_url", required=True)
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"connectors[{self.name}].base_url: the https:// address of the Engage tenant")
        self.base_url = base_url.rstrip("/")
        self.setting("api_key_env", required=True)
        self.user_agent = self.setting("user_agent", DEFAULT_USER_AGENT)
        if not isinstance(self.user_agent, str) or not _USER_AGENT.match(self.user_agent):
            raise ConfigError(f"connectors[{self.name}].user_agent: <System>/<version>, as Engage requires")
        self.source = self.setting("source", "privacy-service")
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"connectors[{self.name}].source: a non-empty name for Engage's delete log")
        self.field_map = field_map(self.name, DEFAULT_FIELDS, self.setting("fields"))
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight)

    def request(self, method: str, path: str, call: TaskCall | None = None, *, ok: tuple[int, ...] = (),
                **kwargs: Any) -> requests.Response:
        """One call with the headers Engage requires on every request."""
        headers = {"apikey": self.secret("api_key_env"), "User-Agent": self.user_agent,
                   "Content-Type": "application/json", "Accept": "application/json"}
        if call is not None and method != "GET":
            headers["Idempotency-Key"] = call.id
        known = (call.email, *call.changes.values()) if call else ()
        return self.http.call(method, f"{self.base_url}{path}", ok=ok, known=known, headers=headers, **kwargs)

    def contact_id(self, email: str, call: TaskCall | None = None) -> str | None:
        """The contact's id, None when Engage holds no contact with that address."""
        answer = self.request("GET", "/api/v3/contacts/id", call, params={"email": email}, ok=(404, 409))
        if answer.status_code == 404:
            return None
        if answer.status_code == 409:
            raise ConnectorError(f"{self.name} holds several contacts with this e-mail (409 MultipleMatches); "
                                 "resolve the duplicates in Engage", retryable=False, http_status=409,
                                 excerpt=excerpt(answer.content, known=(email,)))
        found = _json(answer.content)
        if found is None and _GUID.match(answer.text.strip()):  # a bare GUID rather than a JSON string
            found = answer.text.strip()
        if isinstance(found, dict):
            found = found.get("id") or found.get("contactId")
        if not isinstance(found, str) or not found:
            raise ConnectorError(f"{self.name} answered the contact lookup without an id", retryable=False,
                                 http_status=answer.status_code)
        return found

    def run(self, call: TaskCall) -> Result:
        if call.operation not in self.supported:
            raise Skip(f"a {self.type} system does not take {call.operation}")
        patch = self._patch(call)
        contact = self.contact_id(call.email, call)
        if contact is None:
            return Result(outcome="not_found", data={} if call.operation == "access" else None)
        path = f"/api/v3/contacts/{quote(contact, safe='')}"
        if call.operation == "access":
            answer = self.request("GET", path, call)
            data = _json(answer.content)
            if not isinstance(data, dict):
                raise ConnectorError(f"{self.name} answered a contact that is not an object", retryable=False,
                                     http_status=answer.status_code)
            return Result(outcome="done", data=data, http_status=answer.status_code)
        if call.operation == "erasure":
            answer = self.request("DELETE", path, call, params={"source": self.source}, ok=(404,))
            if answer.status_code == 404:  # deleted in the meantime, or already deleted
                return Result(outcome="not_found", http_status=404)
            return Result(outcome="soft_deleted", http_status=answer.status_code,
                          excerpt="contact deleted; Engage erases it after its 7-day grace period")
        if call.operation == "consent":
            answer = self.request("POST", f"/api/v2/contacts/{quote(contact, safe='')}/preferences/acceptsEmail",
                                  call, json={"value": False})
            return Result(outcome="done", http_status=answer.status_code, excerpt="acceptsEmail set to false")
        answer = self.request("PATCH", path, call, json=patch)
        return Result(outcome="done", http_status=answer.status_code, excerpt=f"updated {', '.join(sorted(patch))}")

    def _patch(self, call: TaskCall) -> dict[str, str]:
        """A rectification's body (only changed, non-empty values: Engage overwrites with
        empties); skips a task this system has nothing to do for before any call."""
        if call.operation == "consent" and call.purposes and not any(
                status in _WITHDRAWN for status in call.purposes.values()):
            raise Skip(f"{self.name} only takes withdrawals of e-mail marketing")
        if call.operation != "rectification":
            return {}
        patch = {self.field_map[k]: v for k, v in call.changes.items() if k in self.field_map and v not in (None, "")}
        if not patch:
            raise Skip(f"{self.name} holds none of the changed fields")
        return patch

    def opt_in(self, email: str) -> bool | None:
        contact = self.contact_id(email)
        if contact is None:
            return None
        answer = self.request("GET", f"/api/v3/contacts/{quote(contact, safe='')}", ok=(404,))
        if answer.status_code == 404:
            return None
        data = _json(answer.content)
        preferences = data.get("preferences") if isinstance(data, dict) else None
        accepts = preferences.get("acceptsEmail") if isinstance(preferences, dict) else None
        if not isinstance(accepts, bool):
            raise ConnectorError(f"{self.name} answered a contact without preferences.acceptsEmail",
                                 retryable=False, http_status=answer.status_code)
        return accepts

    def close(self) -> None:
        self.http.close()

    def test_connection(self) -> str:
        answer = self.request("GET", "/api/v3/contacts/id", params={"email": PROBE_EMAIL}, ok=(404,))
        return f"API key accepted ({self.base_url} answered {answer.status_code} to a contact lookup)"


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None
