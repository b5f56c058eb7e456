"""``salesforce``: Contacts and Leads in a Salesforce org through the core REST API.

The service signs in with the OAuth2 client-credentials flow at the org's My Domain
(``POST /services/oauth2/token``), keeps the token for all threads and fetches a new one
once when Salesforce answers 401. A person is found by a SOQL query on ``Email`` over
Contact and Lead (the e-mail escaped, pages followed through ``nextRecordsUrl``).

Erasure deletes the records (``erasure: delete``, the default: they go to the Recycle Bin,
which Salesforce empties itself) or, with ``erasure: forget``, blanks their personal
fields and flags the linked Individual ``ShouldForget`` (a flag only: the org's own
automation must act on it). Consent sets ``HasOptedOutOfEmail``.

Salesforce answers its daily API limit with 403 ``REQUEST_LIMIT_EXCEEDED`` rather than
429, so that 403 is retried later while any other 403 fails at once.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

import requests

from privacy.connectors.base import ConfigError, Connector, ConnectorError, Result, Skip, TaskCall
from privacy.connectors.http import Http, answer_error, parse_retry_after
from privacy.connectors.vendor import field_map
from privacy.policy.file import ConnectorDef

OBJECTS = ("Contact", "Lead")
LIMIT_RETRY_AFTER_S = 3600.0
MAX_PAGES = 50
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERSION = re.compile(r"v\d+\.\d+\Z")
_WITHDRAWN = ("withdrawn", "expired")

# What the service reads of each object (access), and our field names on each.
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": ("Id", "FirstName", "LastName", "Email", "Phone", "MobilePhone", "MailingStreet",
                "MailingPostalCode", "MailingCity", "MailingCountry", "Birthdate", "HasOptedOutOfEmail"),
    "Lead": ("Id", "FirstName", "LastName", "Email", "Phone", "MobilePhone", "Street", "PostalCode", "City",
             "Country", "Company", "HasOptedOutOfEmail"),
}
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "Contact": {"email": "Email", "first_name": "FirstName", "last_name": "LastName", "phone": "Phone",
                "postal_code": "MailingPostalCode", "country": "MailingCountry", "birth_date": "Birthdate"},
    "Lead": {"email": "Email", "first_name": "FirstName", "last_name": "LastName", "phone": "Phone",
             "postal_code": "PostalCode", "country": "Country"},
}
# ``erasure: forget`` blanks these. LastName is required on both objects, so it gets a
# placeholder instead of null (Salesforce refuses REQUIRED_FIELD_MISSING otherwise).
FORGET_VALUES: dict[str, dict[str, Any]] = {
    "Contact": {"FirstName": None, "LastName": "Forgotten", "Email": None, "Phone": None, "MobilePhone": None,
                "MailingStreet": None, "MailingPostalCode": None, "MailingCity": None, "MailingCountry": None,
                "Birthdate": None, "HasOptedOutOfEmail": True},
    "Lead": {"FirstName": None, "LastName": "Forgotten", "Email": None, "Phone": None, "MobilePhone": None,
             "Street": None, "PostalCode": None, "City": None, "Country": None, "HasOptedOutOfEmail": True},
}


def soql_string(value: str) -> str:
    """``value`` as a quoted SOQL string literal: backslash and quote escaped, so a crafted
    address cannot end the literal and change the query (SOQL injection)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


class SalesforceConnector(Connector):
    type = "salesforce"
    supported = frozenset({"access", "erasure", "rectification", "consent"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        base_url = self.setting("base_url", required=True)
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"connectors[{self.name}].base_url: the org's https:// My Domain address")
        self.base_url = base_url.rstrip("/")
        self.setting("client_id_env", required=True)
        self.setting("client_secret_env", required=True)
        self.api_version = self.setting("api_version", "v62.0")
        if not isinstance(self.api_version, str) or not _VERSION.match(self.api_version):
            raise ConfigError(f"connectors[{self.name}].api_version: like v62.0")
        self.erasure = self.setting("erasure", "delete")
        if self.erasure not in ("delete", "forget"):
            raise ConfigError(f"connectors[{self.name}].erasure: delete or forget")
        self.field_map = {obj: field_map(self.name, DEFAULT_FIELDS[obj], self.setting("fields"), _IDENTIFIER.match)
                          for obj in OBJECTS}
        self.http = Http(self.name, self.timeout_s, definition.max_in_flight)
        self._token: str | None = None
        self._token_lock = threading.Lock()

    @property
    def api(self) -> str:
        return f"{self.base_url}/services/data/{self.api_version}"

    # --- authentication -------------------------------------------------------------------

    def _bearer(self, stale: str | None = None) -> str:
        """The current access token; a new one when there is none or it is ``stale`` (the one
        Salesforce just refused). One thread fetches while the others wait for it."""
        with self._token_lock:
            if self._token is None or self._token == stale:
                self._token = self._fetch_token()
            return self._token

    def _fetch_token(self) -> str:
        form = {"grant_type": "client_credentials", "client_id": self.secret("client_id_env"),
                "client_secret": self.secret("client_secret_env")}
        answer = self.http.call("POST", f"{self.base_url}/services/oauth2/token", data=form)
        body = _json(answer.content)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(f"{self.name} issued no access token", retryable=False,
                                 http_status=answer.status_code)
        return token

    def request(self, method: str, url: str, call: TaskCall | None = None, *, ok: tuple[int, ...] = (),
                **kwargs: Any) -> requests.Response:
        """One authenticated call: refreshes the token once on 401, and turns the daily limit's
        403 into a retryable error."""
        known = (call.email, *call.changes.values()) if call else ()
        headers = dict(kwargs.pop("headers", {}))
        if call is not None and method != "GET":
            headers["Idempotency-Key"] = call.id
        token = self._bearer()
        answer = self.http.call(method, url, ok=(*ok, 401, 403), known=known,
                                headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs)
        if answer.status_code == 401 and 401 not in ok:
            token = self._bearer(stale=token)
            answer = self.http.call(method, url, ok=(*ok, 401, 403), known=known,
                                    headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs)
        if answer.status_code in (401, 403) and answer.status_code not in ok:
            raise self._refusal(answer, known)
        return answer

    def _refusal(self, answer: requests.Response, known: tuple[str, ...]) -> ConnectorError:
        error = answer_error(self.name, answer, known)
        body = _json(answer.content)
        codes = {item.get("errorCode") for item in body if isinstance(item, dict)} if isinstance(body, list) else set()
        if answer.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            wait = parse_retry_after(answer.headers.get("Retry-After")) or LIMIT_RETRY_AFTER_S
            return ConnectorError(f"{self.name} daily API request limit reached (403 REQUEST_LIMIT_EXCEEDED)",
                                  retryable=True, http_status=403, retry_after=wait, excerpt=error.excerpt)
        return error

    # --- finding the person ---------------------------------------------------------------

    def find(self, call: TaskCall, fields: Mapping[str, tuple[str, ...]] | None = None
             ) -> dict[str, list[dict[str, Any]]]:
        """Every Contact and Lead whose Email is the person's, by object."""
        found: dict[str, list[dict[str, Any]]] = {}
        for obj in OBJECTS:
            wanted = (fields or self._read_fields())[obj]
            soql = f"SELECT {', '.join(wanted)} FROM {obj} WHERE Email = {soql_string(call.email)}"
            found[obj] = self._query(soql, call)
        return found

    def _read_fields(self) -> dict[str, tuple[str, ...]]:
        extra = ("IndividualId",) if self.erasure == "forget" else ()
        return {obj: tuple(dict.fromkeys((*READ_FIELDS[obj], *self.field_map[obj].values(), *extra)))
                for obj in OBJECTS}

    def _query(self, soql: str, call: TaskCall) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        answer = self.request("GET", f"{self.api}/query", call, params={"q": soql})
        for _page in range(MAX_PAGES):
            page = _json(answer.content)
            if not isinstance(page, dict) or not isinstance(page.get("records"), list):
                raise ConnectorError(f"{self.name} answered a query without records", retryable=False,
                                     http_status=answer.status_code)
            records.extend({k: v for k, v in r.items() if k != "attributes"} for r in page["records"])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return records
            answer = self.request("GET", f"{self.base_url}{next_url}", call)
        raise ConnectorError(f"{self.name} query answered more than {MAX_PAGES} pages", retryable=False)

    # --- work -----------------------------------------------------------------------------

    def run(self, call: TaskCall) -> Result:
        if call.operation == "access":
            found = self.find(call)
            if not any(found.values()):
                return Result(outcome="not_found", data={})
            return Result(outcome="done", data=found)
        if call.operation == "erasure":
            return self._erase(call)
        if call.operation == "consent":
            return self._opt_out(call)
        if call.operation == "rectification":
            return self._rectify(call)
        raise Skip(f"a {self.type} system does not take {call.operation}")

    def _sobject(self, obj: str, record_id: str) -> str:
        return f"{self.api}/sobjects/{obj}/{record_id}"

    def _erase(self, call: TaskCall) -> Result:
        found = self.find(call)
        if not any(found.values()):
            return Result(outcome="not_found")
        counts = []
        for obj, records in found.items():
            for record in records:
                if self.erasure == "delete":
                    self.request("DELETE", self._sobject(obj, record["Id"]), call, ok=(404,))
                else:
                    self.request("PATCH", self._sobject(obj, record["Id"]), call, json=FORGET_VALUES[obj])
                    if record.get("IndividualId"):
                        self.request("PATCH", self._sobject("Individual", record["IndividualId"]), call,
                                     json={"ShouldForget": True})
            counts.append(f"{obj} x{len(records)}")
        verb = "deleted" if self.erasure == "delete" else "forgotten"
        return Result(outcome="done", excerpt=f"{verb}: {', '.join(counts)}")

    def _opt_out(self, call: TaskCall) -> Result:
        if call.purposes and not any(status in _WITHDRAWN for status in call.purposes.values()):
            raise Skip(f"{self.name} only takes withdrawals of e-mail marketing")
        found = self.find(call, {obj: ("Id", "HasOptedOutOfEmail") for obj in OBJECTS})
        if not any(found.values()):
            return Result(outcome="not_found")
        for obj, records in found.items():
            for record in records:
                if not record.get("HasOptedOutOfEmail"):
                    self.request("PATCH", self._sobject(obj, record["Id"]), call, json={"HasOptedOutOfEmail": True})
        return Result(outcome="done", excerpt="HasOptedOutOfEmail set on " + _count(found))

    def _rectify(self, call: TaskCall) -> Result:
        patches = {obj: {self.field_map[obj][k]: v for k, v in call.changes.items()
                         if k in self.field_map[obj] and v not in (None, "")} for obj in OBJECTS}
        if not any(patches.values()):
            raise Skip(f"{self.name} holds none of the changed fields")
        found = self.find(call, {obj: ("Id",) for obj in OBJECTS})
        if not any(found.values()):
            return Result(outcome="not_found")
        for obj, records in found.items():
            for record in records:
                if patches[obj]:
                    self.request("PATCH", self._sobject(obj, record["Id"]), call, json=patches[obj])
        return Result(outcome="done", excerpt="updated " + _count(found))

    def opt_in(self, email: str) -> bool | None:
        call = TaskCall(id="opt-in", operation="access", email=email)
        found = self.find(call, {obj: ("Id", "HasOptedOutOfEmail") for obj in OBJECTS})
        records = [r for records in found.values() for r in records]
        if not records:
            return None
        return any(not r.get("HasOptedOutOfEmail") for r in records)

    def close(self) -> None:
        self.http.close()

    def test_connection(self) -> str:
        answer = self.request("GET", f"{self.api}/limits")
        daily = _json(answer.content)
        daily = daily.get("DailyApiRequests") if isinstance(daily, dict) else None
        if isinstance(daily, dict) and "Remaining" in daily:
            return f"signed in; {daily['Remaining']} of {daily.get('Max')} daily API requests left"
        return f"signed in; {self.api}/limits answered {answer.status_code}"


def _count(found: Mapping[str, list[dict[str, Any]]]) -> str:
    return ", ".join(f"{obj} x{len(records)}" for obj, records in found.items() if records)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None
