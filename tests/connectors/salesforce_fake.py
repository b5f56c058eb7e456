"""A fake Salesforce org for the connector tests, written from Salesforce's public
documentation (each route cites what it copies). It checks what Salesforce requires: every
REST call carries a Bearer token the fake's token route issued, or it answers 401
INVALID_SESSION_ID; a query must be well-formed SOQL with a properly escaped string, or it
answers 400 MALFORMED_QUERY."""
from __future__ import annotations

import itertools
import re
import urllib.parse
from typing import Any

from tests.fakes import Answer, FakeSystem, Seen

VERSION = "v62.0"
API = f"/services/data/{VERSION}"
CLIENT_ID = "3MVG9-client-id"
CLIENT_SECRET = "s3cr3t-client-secret"
_SOQL = re.compile(r"SELECT ([A-Za-z_, ]+) FROM (Contact|Lead) WHERE Email = '((?:[^'\\]|\\.)*)'\Z")
_UNESCAPE = {"\\\\": "\\", "\\'": "'", '\\"': '"', "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _sf_error(status: int, code: str, message: str) -> Answer:
    # REST API Developer Guide, errorcodes: the body is a JSON list of {message, errorCode}.
    return status, [{"message": message, "errorCode": code}], {}


class SalesforceFake:
    def __init__(self) -> None:
        self.system = FakeSystem()
        self.url = self.system.url
        self.records: dict[str, dict[str, dict[str, Any]]] = {"Contact": {}, "Lead": {}, "Individual": {}}
        self.tokens: set[str] = set()
        self.page_size = 2000
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        s = self.system
        s.route("POST", "/services/oauth2/token", self.token)
        s.route("GET", f"{API}/query", self.authed(self.query))
        s.route("GET", f"{API}/query/(?P<cursor>[^/]+)", self.authed(self.more))
        s.route("DELETE", f"{API}/sobjects/(?P<obj>\\w+)/(?P<id>\\w+)", self.authed(self.delete))
        s.route("PATCH", f"{API}/sobjects/(?P<obj>\\w+)/(?P<id>\\w+)", self.authed(self.patch))
        s.route("GET", f"{API}/limits", self.authed(self.limits))

    def add(self, obj: str, **fields: Any) -> str:
        prefix = {"Contact": "003", "Lead": "00Q", "Individual": "0PK"}[obj]
        record_id = f"{prefix}{next(self._ids):012d}"
        self.records[obj][record_id] = {"Id": record_id, "HasOptedOutOfEmail": False, **fields}
        return record_id

    def close(self) -> None:
        self.system.close()

    def token(self, seen: Seen) -> Answer:
        # Connect REST API Developer Guide, quickstart_connecting (client credentials flow):
        # form grant_type=client_credentials, client_id, client_secret ->
        # {access_token, instance_url, token_type: "Bearer", ...}; a bad client -> 400 invalid_client.
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, {}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 400, {"error": "invalid_client", "error_description": "invalid client credentials"}, {}
        token = f"00Dxx!token{next(self._ids)}"
        self.tokens.add(token)
        return 200, {"access_token": token, "instance_url": self.url, "token_type": "Bearer",
                     "issued_at": "1700000000000", "signature": "sig"}, {}

    def authed(self, handler: Any) -> Any:
        # REST API Developer Guide, errorcodes: 401 "Session expired or invalid", INVALID_SESSION_ID.
        def check(seen: Seen) -> Answer:
            header = seen.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.tokens:
                return _sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return handler(seen)
        return check

    def query(self, seen: Seen) -> Answer:
        # REST API Developer Guide, resources_query: GET /query?q=<SOQL> ->
        # {totalSize, done, records[], nextRecordsUrl}; records carry attributes {type, url}.
        # A bad query -> 400 MALFORMED_QUERY.
        match = _SOQL.match(seen.query.get("q", ""))
        if not match:
            return _sf_error(400, "MALFORMED_QUERY", "unexpected token")
        wanted = [f.strip() for f in match.group(1).split(",")]
        obj = match.group(2)
        email = re.sub(r"\\.", lambda m: _UNESCAPE.get(m.group(0), m.group(0)), match.group(3))
        hits = [{"attributes": {"type": obj, "url": f"{API}/sobjects/{obj}/{r['Id']}"},
                 **{f: r.get(f) for f in wanted}} for r in self.records[obj].values() if r.get("Email") == email]
        return self._page(hits, len(hits))

    def more(self, seen: Seen) -> Answer:
        # resources_query: the rest of a result set at nextRecordsUrl (/query/<cursor>-<offset>).
        assert seen.match is not None
        rest = self._cursors.pop(seen.match.group("cursor"), None)
        if rest is None:
            return _sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(rest, None)

    def _page(self, records: list[dict[str, Any]], total: int | None) -> Answer:
        page, rest = records[:self.page_size], records[self.page_size:]
        body: dict[str, Any] = {"totalSize": total if total is not None else len(records), "done": not rest,
                                "records": page}
        if rest:
            cursor = f"01gD0000002HU6K-{next(self._ids)}"
            self._cursors[cursor] = rest
            body["nextRecordsUrl"] = f"{API}/query/{cursor}"
        return 200, body, {}

    def delete(self, seen: Seen) -> Answer:
        # REST API Developer Guide, dome_delete_record: DELETE /sobjects/<Type>/<id>, no body,
        # 204 No Content; an unknown or deleted id -> 404 NOT_FOUND / ENTITY_IS_DELETED.
        assert seen.match is not None
        if self.records.get(seen.match["obj"], {}).pop(seen.match["id"], None) is None:
            return _sf_error(404, "ENTITY_IS_DELETED", "entity is deleted")
        return 204, None, {}

    def patch(self, seen: Seen) -> Answer:
        # REST API Developer Guide, dome_update_fields: PATCH /sobjects/<Type>/<id> with the
        # fields -> 204; LastName is required on Contact and Lead (REQUIRED_FIELD_MISSING).
        assert seen.match is not None
        record = self.records.get(seen.match["obj"], {}).get(seen.match["id"])
        if record is None:
            return _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        changes = seen.json()
        if "LastName" in changes and not changes["LastName"] and seen.match["obj"] != "Individual":
            return _sf_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]")
        record.update(changes)
        return 204, None, {}

    def limits(self, seen: Seen) -> Answer:
        # REST API Developer Guide, resources_limits: {"DailyApiRequests": {"Max", "Remaining"}, ...}.
        return 200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14990}}, {}
