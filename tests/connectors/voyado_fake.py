"""A fake Voyado Engage tenant for the connector tests, written from developer.voyado.com
(each route cites what it copies). Like Engage, it refuses a call that lacks any of the
headers the documentation makes mandatory: without ``Content-Type: application/json`` (or
``User-Agent``) it answers 500 "An error has occurred"; without a valid ``apikey``, 401."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.fakes import Answer, FakeSystem, Seen

API_KEY = "voyado-api-key-123"
_USER_AGENT = re.compile(r"[^/\s]+/\S+")
_ID = "(?P<id>[0-9a-f-]{36})"


class VoyadoFake:
    def __init__(self) -> None:
        self.system = FakeSystem()
        self.url = self.system.url
        self.contacts: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        s = self.system
        s.route("GET", "/api/v3/contacts/id", self.checked(self.find))
        s.route("GET", f"/api/v3/contacts/{_ID}", self.checked(self.get))
        s.route("DELETE", f"/api/v3/contacts/{_ID}", self.checked(self.delete))
        s.route("PATCH", f"/api/v3/contacts/{_ID}", self.checked(self.update))
        s.route("POST", f"/api/v2/contacts/{_ID}/preferences/acceptsEmail", self.checked(self.accepts_email))

    def add(self, email: str, **attributes: Any) -> str:
        contact_id = str(uuid.uuid4())
        self.contacts[contact_id] = {"id": contact_id, "email": email, "firstName": "", "lastName": "",
                                     "preferences": {"acceptsEmail": True, "acceptsSms": False,
                                                     "acceptsPostal": True}, **attributes}
        return contact_id

    def close(self) -> None:
        self.system.close()

    def checked(self, handler: Any) -> Any:
        # developer.voyado.com/en/api/api-authentication.html: apikey, User-Agent
        # "<System>/<version>" and Content-Type: application/json are mandatory on every
        # call; without the Content-Type Engage answers 500 "An error has occurred".
        def check(seen: Seen) -> Answer:
            if seen.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return 500, {"message": "An error has occurred."}, {}
            if not _USER_AGENT.fullmatch(seen.headers.get("User-Agent", "")):
                return 500, {"message": "An error has occurred."}, {}
            if seen.headers.get("Apikey") != API_KEY:
                return 401, {"message": "Authorization has been denied for this request."}, {}
            return handler(seen)
        return check

    def _live(self, seen: Seen) -> dict[str, Any] | None:
        assert seen.match is not None
        contact_id = seen.match["id"]
        return None if contact_id in self.deleted else self.contacts.get(contact_id)

    def find(self, seen: Seen) -> Answer:
        # developer.voyado.com/en/contacts/identify-contact/find-contact.html: GET
        # contacts/id?email= -> 200 with the contactId as a JSON string; 404 ContactNotFound;
        # 409 MultipleMatches when several contacts share the address.
        email = seen.query.get("email", "")
        hits = [c["id"] for c in self.contacts.values() if c["email"] == email and c["id"] not in self.deleted]
        if not hits:
            return 404, {"errorCode": "ContactNotFound", "message": f"No contact found for {email}"}, {}
        if len(hits) > 1:
            return 409, {"errorCode": "MultipleMatches", "message": f"Multiple contacts for {email}"}, {}
        return 200, json.dumps(hits[0]), {"Content-Type": "application/json"}

    def get(self, seen: Seen) -> Answer:
        # developer.voyado.com/docs/contacts (v3 get contact): the contact's attributes,
        # with preferences {acceptsEmail, acceptsSms, acceptsPostal}; 404 if unknown.
        contact = self._live(seen)
        return (200, contact, {}) if contact else (404, {"errorCode": "ContactNotFound"}, {})

    def delete(self, seen: Seen) -> Answer:
        # developer.voyado.com/en/contacts/delete-contact.html (v3: DELETE
        # contacts/{id}?source=): no payload, 200; 404 if not found or already deleted.
        # The deletion is soft: the contact is restorable for 7 days.
        contact = self._live(seen)
        if contact is None:
            return 404, {"errorCode": "ContactNotFound"}, {}
        if not seen.query.get("source"):
            return 400, {"errorCode": "InvalidSource", "message": "source is required"}, {}
        self.deleted.add(contact["id"])
        return 200, None, {}

    def update(self, seen: Seen) -> Answer:
        # developer.voyado.com/en/contacts/update-contact.html (v3 PATCH contacts/{id}): only
        # the fields sent change; an empty or null value OVERWRITES the stored one; unknown
        # fields are ignored. Answers the updated contact.
        contact = self._live(seen)
        if contact is None:
            return 404, {"errorCode": "ContactNotFound"}, {}
        contact.update(seen.json() or {})
        return 200, contact, {}

    def accepts_email(self, seen: Seen) -> Answer:
        # Engage v2 Swagger (ContactsService: POST contacts/{id}/preferences/acceptsEmail,
        # body BoolRequest {"value": bool}) -> 200.
        contact = self._live(seen)
        if contact is None:
            return 404, {"errorCode": "ContactNotFound"}, {}
        body = seen.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), bool):
            return 400, {"errorCode": "InvalidRequest"}, {}
        contact["preferences"]["acceptsEmail"] = body["value"]
        return 200, None, {}
