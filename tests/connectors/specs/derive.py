"""Make the ``*.prism.json`` test copies from the vendors' published files (README.md).

    python tests/connectors/specs/derive.py hubspot/contacts-v3.json hubspot/contacts-v3.prism.json
    python tests/connectors/specs/derive.py hubspot/subs-v4.json hubspot/subs-v4.prism.json
    python tests/connectors/specs/derive.py klaviyo/stable.json klaviyo/stable.prism.json
    python tests/connectors/specs/derive.py mailchimp/marketing-openapi.json mailchimp/marketing-openapi.prism.json

Answers change: ``"example": null`` and string examples on object schemas are dropped
(Prism serves them and then refuses its own answer), ``*/*`` error bodies become
``application/json``, and a few named answers are added so a test can pick one with
``Prefer: example=<name>`` (the first stays Prism's default). One request rule changes:
the Mailchimp conversion types every merge field value as an object, where Mailchimp takes
a string or number (``{"FNAME": "Ann"}``; its own SDKs type the value as string | number |
address), so that type is dropped.
"""
from __future__ import annotations

import json
import sys
from typing import Any

TS = "2026-12-01T10:00:00Z"
SEARCH = "/crm/v3/objects/contacts/search"
UNSUBSCRIBE_ALL = "/communication-preferences/v4/statuses/{subscriberIdString}/unsubscribe-all"
PROFILES = "/api/profiles"
CONTACT = {"id": "512", "archived": False, "createdAt": TS, "updatedAt": TS,
           "properties": {"email": "anna@example.se", "firstname": "Anna", "lastname": "Andersson"}}
WIDE = {"channel": "EMAIL", "status": "UNSUBSCRIBED", "subscriberIdString": "anna@example.se", "timestamp": TS,
        "wideStatusType": "PORTAL_WIDE"}
STATUS = {"channel": "EMAIL", "source": "API", "status": "UNSUBSCRIBED", "subscriberIdString": "anna@example.se",
          "subscriptionId": 7, "timestamp": TS}
ITEM_ERROR = {"category": "VALIDATION_ERROR", "context": {}, "errors": [{"message": "could not unsubscribe"}],
              "links": {}, "message": "could not unsubscribe", "status": "400"}
PROFILE = {"type": "profile", "id": "01GDDKASAP8TKDDA2GRZDSVP4H",
           "attributes": {"email": "anna@example.se", "first_name": "Anna", "last_name": "Andersson",
                          "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": True,
                                                                    "consent": "SUBSCRIBED"}}}},
           "links": {"self": "https://a.klaviyo.com/api/profiles/01GDDKASAP8TKDDA2GRZDSVP4H/"}}
PROFILES_LINKS = {"self": "https://a.klaviyo.com/api/profiles/"}


def _envelope(results: list[Any], errors: list[Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "COMPLETE", "startedAt": TS, "completedAt": TS, "results": results}
    if errors:
        out.update(status="CANCELED", errors=errors, numErrors=len(errors))
    return out


# (path, method, media type) -> named answers for the 200/202, the first being the default
EXAMPLES: dict[tuple[str, str, str], dict[str, Any]] = {
    (SEARCH, "post", "application/json"): {
        "one-contact": {"total": 1, "results": [CONTACT]},
        "no-match": {"total": 0, "results": []}},
    (UNSUBSCRIBE_ALL, "post", "application/json"): {
        "unsubscribed": _envelope([STATUS]),
        "item-error": _envelope([], [ITEM_ERROR])},
    (UNSUBSCRIBE_ALL, "get", "application/json"): {
        "opted-out": _envelope([WIDE]),
        "not-opted-out": _envelope([])},
    (PROFILES, "get", "application/vnd.api+json"): {
        "one-profile": {"data": [PROFILE], "links": PROFILES_LINKS},
        "no-match": {"data": [], "links": PROFILES_LINKS}},
}


def normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "example" and (value is None or (isinstance(value, str) and node.get("type") == "object")):
            continue
        if key == "merge_fields" and isinstance(value, dict) and "additionalProperties" in value:
            value = {**value, "additionalProperties": {k: v for k, v in value["additionalProperties"].items()
                                                       if k != "type"}}
        if key == "content" and isinstance(value, dict) and "*/*" in value:
            value = {("application/json" if k == "*/*" else k): v for k, v in value.items()}
        out[key] = normalise(value)
    return out


def add_examples(spec: dict[str, Any]) -> None:
    for (path, method, media), named in EXAMPLES.items():
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        status = "200" if "200" in operation["responses"] else "202"
        content = operation["responses"][status]["content"][media]
        content.pop("example", None)
        content["examples"] = {name: {"value": value} for name, value in named.items()}


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        spec = normalise(json.load(f))
    add_examples(spec)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
