"""``hubspot``: HubSpot CRM contacts (v3) and communication preferences (v4).

Every operation first finds the contact by e-mail with the search API: the GDPR delete
endpoint, given an address that is not a contact, blocklists that address instead, so it
is only ever called with a contact id found here. Settings: ``base_url`` (default
https://api.hubapi.com), ``preferences_base_url`` (the communication preferences API;
default ``base_url``), ``token_env`` (a private app token), ``properties`` (what an access
answer reads) and ``fields`` (our field name → HubSpot property, for rectification).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from privacy.connectors.base import ConfigError, Connector, ConnectorError, Result, TaskCall, excerpt
from privacy.connectors.http import Http, answer_error
from privacy.connectors.vendor import base_url, field_map, json_object, mapped_changes
from privacy.policy.file import ConnectorDef

DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_FIELDS = {"email": "email", "first_name": "firstname", "last_name": "lastname", "phone": "phone",
                  "postal_code": "zip", "country": "country", "birth_date": "date_of_birth"}
DEFAULT_PROPERTIES = ("email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip",
                      "country", "date_of_birth", "company", "jobtitle", "hs_additional_emails",
                      "createdate", "lastmodifieddate")
# A 429 under the daily limit lasts until midnight in the account's time zone, which we do
# not know; HubSpot sends no Retry-After, so check again after an hour rather than soon.
DAILY_LIMIT_RETRY_S = 3600.0


class HubSpotConnector(Connector):
    type = "hubspot"
    supported = frozenset({"access", "erasure", "rectification", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        self.base_url = base_url(self.name, "base_url", self.setting("base_url", DEFAULT_BASE_URL))
        self.preferences_url = base_url(self.name, "preferences_base_url",
                                    self.setting("preferences_base_url", self.base_url))
        self.setting("token_env", required=True)
        properties = self.setting("properties", list(DEFAULT_PROPERTIES))
        if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
            raise ConfigError(f"connectors[{self.name}].properties: a list of HubSpot property names")
        self.fields = field_map(self.name, DEFAULT_FIELDS, self.setting("fields"))
        self.properties = list(dict.fromkeys([*properties, *self.fields.values()]))
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight)

    # --- HTTP -------------------------------------------------------------------------

    def _call(self, method: str, url: str, known: tuple[str, ...], *, ok: tuple[int, ...] = (),
              idempotency_key: str | None = None, **kwargs: Any) -> requests.Response:
        """One authenticated call; a 429 under the daily limit waits long (see above)."""
        headers = {"Authorization": f"Bearer {self.secret('token_env')}", **kwargs.pop("headers", {})}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        answer = self.http.call(method, url, ok=(*ok, 429), known=known, headers=headers, **kwargs)
        if answer.status_code != 429 or 429 in ok:
            return answer
        raise rate_limit_error(self.name, answer, known)

    def find_contacts(self, email: str) -> list[dict[str, Any]]:
        """The contacts whose primary e-mail is ``email`` (normally one, or none)."""
        body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": self.properties, "sorts": [], "limit": 10, "after": "0"}
        answer = self._call("POST", f"{self.base_url}/crm/v3/objects/contacts/search", (email,), json=body)
        results = json_object(self.name, answer).get("results") or []
        return [r for r in results if isinstance(r, dict) and r.get("id")]

    # --- operations -------------------------------------------------------------------

    def run(self, call: TaskCall) -> Result:
        contacts = self.find_contacts(call.email)
        if not contacts:
            return Result(outcome="not_found", data={} if call.operation == "access" else None)
        if call.operation == "access":
            return Result(outcome="done", data={"contacts": [
                {"id": c["id"], "properties": c.get("properties") or {}, "createdAt": c.get("createdAt"),
                 "updatedAt": c.get("updatedAt")} for c in contacts]})
        if call.operation == "erasure":
            for contact in contacts:
                self._call("POST", f"{self.base_url}/crm/v3/objects/contacts/gdpr-delete", (call.email,),
                           json={"objectId": str(contact["id"])}, idempotency_key=call.id)
            return Result(outcome="done", http_status=204)
        if call.operation == "rectification":
            return self._rectify(call, contacts)
        if call.operation == "consent":
            return self._unsubscribe_all(call)
        raise ConnectorError(f"{self.name} does not take {call.operation}", retryable=False)

    def _rectify(self, call: TaskCall, contacts: list[dict[str, Any]]) -> Result:
        properties = mapped_changes(self.type, call.changes, self.fields)
        known = (call.email, *call.changes.values())
        for contact in contacts:
            answer = self._call("PATCH", f"{self.base_url}/crm/v3/objects/contacts/{quote(str(contact['id']))}",
                                known, json={"properties": properties}, idempotency_key=call.id)
        return Result(outcome="done", http_status=answer.status_code)

    def _unsubscribe_all_url(self, email: str) -> str:
        return f"{self.preferences_url}/communication-preferences/v4/statuses/{quote(email, safe='')}/unsubscribe-all"

    def _unsubscribe_all(self, call: TaskCall) -> Result:
        """Unsubscribe from every e-mail subscription. HubSpot answers 200 even when an item
        failed: its ``errors`` then say so, and the task fails."""
        answer = self._call("POST", self._unsubscribe_all_url(call.email), (call.email,), params={"channel": "EMAIL"},
                            idempotency_key=call.id)
        parsed = json_object(self.name, answer)
        errors = parsed.get("errors") or []
        if errors or parsed.get("numErrors") or parsed.get("status") == "CANCELED":
            categories = sorted({str(e.get("category", "?")) for e in errors if isinstance(e, dict)}) or ["?"]
            raise ConnectorError(f"{self.name} did not unsubscribe the contact: {len(errors)} error(s) "
                                 f"({', '.join(categories)[:80]})", retryable=False, http_status=answer.status_code,
                                 excerpt=excerpt(answer.content, known=(call.email,)))
        return Result(outcome="done", http_status=answer.status_code)

    def opt_in(self, email: str) -> bool | None:
        """False when the contact has opted out of all e-mail, True otherwise; None when
        HubSpot has no such contact."""
        if not self.find_contacts(email):
            return None
        answer = self._call("GET", self._unsubscribe_all_url(email), (email,), params={"channel": "EMAIL"})
        return not json_object(self.name, answer).get("results")

    def test_connection(self) -> str:
        self._call("GET", f"{self.base_url}/crm/v3/objects/contacts", (), params={"limit": 1})
        return f"{self.base_url}: contacts readable with the token in {self.setting('token_env')}"


def rate_limit_error(system: str, answer: requests.Response, known: tuple[str, ...]) -> ConnectorError:
    """The retryable error for a 429; under the daily limit (``policyName: DAILY``) without
    a Retry-After, it asks to wait :data:`DAILY_LIMIT_RETRY_S`."""
    error = answer_error(system, answer, known)
    try:
        policy = json.loads(answer.content).get("policyName")
    except (ValueError, AttributeError):
        policy = None
    if policy == "DAILY":
        error.reason = f"{system} daily API limit reached (429)"
        if error.retry_after is None:
            error.retry_after = DAILY_LIMIT_RETRY_S
    return error

