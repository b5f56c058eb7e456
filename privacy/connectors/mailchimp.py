"""``mailchimp``: Mailchimp Marketing API 3.0 list members.

Mailchimp holds a person once per audience (list), addressed by the MD5 of the lower-cased
address, so every operation covers each audience in ``audiences``. Erasure is
``delete-permanent`` (the plain DELETE only archives). Settings: ``api_key_env`` (the key
ends in its data centre, ``…-us21``), ``base_url`` (default from that data centre),
``audiences`` (list ids, required) and ``fields`` (our field name → merge field, or
``email_address``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from privacy.connectors.base import ConfigError, Connector, ConnectorError, Result, TaskCall
from privacy.connectors.http import Http
from privacy.connectors.vendor import base_url, field_map, json_object, mapped_changes
from privacy.policy.file import ConnectorDef

DEFAULT_FIELDS = {"email": "email_address", "first_name": "FNAME", "last_name": "LNAME", "phone": "PHONE"}
# Member properties that are the member's own; every other mapped name is a merge field.
TOP_LEVEL = frozenset({"email_address", "language"})


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id in a list: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class MailchimpConnector(Connector):
    type = "mailchimp"
    supported = frozenset({"access", "erasure", "rectification", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        self.setting("api_key_env", required=True)
        configured = self.setting("base_url")
        self.configured_url = None if configured is None else base_url(self.name, "base_url", configured)
        audiences = self.setting("audiences")
        if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ConfigError(f"connectors[{self.name}].audiences: a non-empty list of audience (list) ids")
        self.audiences: list[str] = audiences
        self.fields = field_map(self.name, DEFAULT_FIELDS, self.setting("fields"))
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight)

    # --- HTTP -------------------------------------------------------------------------

    def api_url(self) -> str:
        """``base_url``, or the data centre's API address from the key's suffix."""
        if self.configured_url:
            return self.configured_url
        key = self.secret("api_key_env")
        dc = key.rsplit("-", 1)[1] if "-" in key else ""
        if not dc.isalnum():
            raise ConnectorError(f"the key in {self.setting('api_key_env')} names no data centre (…-us21): "
                                 "set base_url", retryable=False)
        return f"https://{dc}.api.mailchimp.com/3.0"

    def _call(self, method: str, path: str, known: tuple[str, ...], *, ok: tuple[int, ...] = (),
              idempotency_key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.http.call(method, self.api_url() + path, ok=ok, known=known, headers=headers,
                              auth=("anystring", self.secret("api_key_env")), **kwargs)

    def _member_path(self, audience: str, email: str) -> str:
        return f"/lists/{quote(audience, safe='')}/members/{subscriber_hash(email)}"

    def members(self, email: str) -> dict[str, dict[str, Any]]:
        """The person's member record in each configured audience that has one."""
        found: dict[str, dict[str, Any]] = {}
        for audience in self.audiences:
            answer = self._call("GET", self._member_path(audience, email), (email,), ok=(404,))
            if answer.status_code != 404:
                member = json_object(self.name, answer)
                member.pop("_links", None)
                found[audience] = member
        return found

    # --- operations -------------------------------------------------------------------

    def run(self, call: TaskCall) -> Result:
        members = self.members(call.email)
        if not members:
            return Result(outcome="not_found", data={} if call.operation == "access" else None)
        if call.operation == "access":
            return Result(outcome="done", data={"audiences": members})
        if call.operation == "erasure":
            return self._erase(call, members)
        if call.operation == "consent":
            return self._unsubscribe(call, members)
        if call.operation == "rectification":
            return self._rectify(call, members)
        raise ConnectorError(f"{self.name} does not take {call.operation}", retryable=False)

    def _erase(self, call: TaskCall, members: dict[str, dict[str, Any]]) -> Result:
        """``delete-permanent`` in each audience holding the person. A 404 there means the
        member went between our read and the delete (an earlier attempt, say): gone all the same."""
        for audience in members:
            self._call("POST", self._member_path(audience, call.email) + "/actions/delete-permanent",
                       (call.email,), ok=(404,), idempotency_key=call.id)
        return Result(outcome="done", http_status=204)

    def _unsubscribe(self, call: TaskCall, members: dict[str, dict[str, Any]]) -> Result:
        """Unsubscribed in each audience, with every GDPR marketing permission the member
        has (audiences with GDPR fields only) turned off."""
        for audience, member in members.items():
            body: dict[str, Any] = {"status": "unsubscribed"}
            permissions = [{"marketing_permission_id": p["marketing_permission_id"], "enabled": False}
                           for p in member.get("marketing_permissions") or []
                           if isinstance(p, dict) and p.get("marketing_permission_id")]
            if permissions:
                body["marketing_permissions"] = permissions
            self._call("PATCH", self._member_path(audience, call.email), (call.email,), json=body,
                       idempotency_key=call.id)
        return Result(outcome="done", http_status=200)

    def _rectify(self, call: TaskCall, members: dict[str, dict[str, Any]]) -> Result:
        changes = mapped_changes(self.type, call.changes, self.fields)
        body: dict[str, Any] = {k: v for k, v in changes.items() if k in TOP_LEVEL}
        merge_fields = {k: v for k, v in changes.items() if k not in TOP_LEVEL}
        if merge_fields:
            body["merge_fields"] = merge_fields
        known = (call.email, *call.changes.values())
        for audience in members:
            self._call("PATCH", self._member_path(audience, call.email), known, json=body, idempotency_key=call.id)
        return Result(outcome="done", http_status=200)

    def opt_in(self, email: str) -> bool | None:
        """True when the person is ``subscribed`` in any configured audience."""
        members = self.members(email)
        if not members:
            return None
        return any(m.get("status") == "subscribed" for m in members.values())

    def test_connection(self) -> str:
        self._call("GET", "/ping", ())
        return f"{self.api_url()}: /ping answered with the key in {self.setting('api_key_env')}"
