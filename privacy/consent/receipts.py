"""Consent receipts after the Kantara Initiative Consent Receipt Specification v1.1.

A receipt names the subject only by the pseudonymous subject id, lists each purpose with
its legal basis, notice version and notice text hash, and is signed (JWS compact, EdDSA)
with the key published at ``GET /v1/receipts/keys``. It is written in the sign-up's
language (``language``): the purposes' names and how each consent or contract ends.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from privacy.ids import new_id
from privacy.languages import DEFAULT_LANGUAGE, in_language, supported
from privacy.ledger import timestamp
from privacy.policy.file import Policy, PurposeDef

KANTARA_VERSION = "KI-CR-v1.1.0"
T = TypeVar("T")

TERMS: dict[str, dict[str, str]] = {
    "en": {
        "consent": "Withdraw at any time: the link in every e-mail, or the preference centre.",
        "lapses": " Consent lapses after {days} days unless renewed.",
        "ends": "Ends with the {basis}.",
        "retention": " Data is {action} {days} days after {after}.",
        "basis.contract": "contract", "basis.legal_obligation": "legal obligation",
        "basis.legitimate_interest": "legitimate interest", "basis.vital_interest": "vital interest",
        "basis.public_task": "public task",
        "action.delete": "deleted", "action.anonymise": "anonymised",
        "after.last_activity": "last activity", "after.withdrawal": "withdrawal",
        "after.collection": "collection", "after.consent_expiry": "consent expiry",
    },
    "sv": {
        "consent": "Återkalla när som helst: länken i varje mejl, eller inställningssidan.",
        "lapses": " Samtycket upphör efter {days} dagar om det inte förnyas.",
        "ends": "Upphör med {basis}.",
        "retention": " Uppgifterna {action} {days} dagar efter {after}.",
        "basis.contract": "avtalet", "basis.legal_obligation": "den rättsliga förpliktelsen",
        "basis.legitimate_interest": "det berättigade intresset", "basis.vital_interest": "det grundläggande intresset",
        "basis.public_task": "uppgiften av allmänt intresse",
        "action.delete": "raderas", "action.anonymise": "anonymiseras",
        "after.last_activity": "din senaste aktivitet", "after.withdrawal": "att samtycket återkallas",
        "after.collection": "insamlingen", "after.consent_expiry": "att samtycket löper ut",
    },
}


def _termination(purpose: PurposeDef, language: str) -> str:
    words = TERMS[language]

    def word(kind: str, code: str) -> str:
        return words.get(f"{kind}.{code}") or code.replace("_", " ")

    if purpose.legal_basis == "consent":
        text = words["consent"]
        if purpose.consent_valid_days:
            text += words["lapses"].format(days=purpose.consent_valid_days)
    else:
        text = words["ends"].format(basis=word("basis", purpose.legal_basis))
    if purpose.retention:
        r = purpose.retention
        text += words["retention"].format(action=word("action", r["action"]), days=r["period_days"],
                                          after=word("after", r["after"]))
    return text


def _controller_entry(policy: Policy, _: None, __: str) -> dict[str, Any]:
    controller = policy.controller
    entry: dict[str, Any] = {
        "piiController": controller["name"], "contact": controller["contact"], "address": controller["address"],
        "email": controller["email"], "phone": controller["phone"],
    }
    if controller.get("url"):
        entry["piiControllerUrl"] = controller["url"]
    return entry


def _kantara_purpose(policy: Policy, p: PurposeDef, language: str) -> dict[str, Any]:
    others = [r for r in p.recipients if r != policy.controller["name"]]
    item: dict[str, Any] = {
        "purpose": in_language(p.name, language, next(iter(p.name.values()))),
        "purposeCategory": [p.category or p.legal_basis],
        "consentType": "EXPLICIT",
        "piiCategory": sorted({policy.fields[f].category for f in p.fields if f in policy.fields}),
        "primaryPurpose": p.legal_basis == "contract",
        "termination": _termination(p, language),
        "thirdPartyDisclosure": bool(others),
    }
    if others:
        item["thirdPartyName"] = ", ".join(others)
    return item


_descriptions: dict[tuple[int, int, Any, str], tuple[Policy, Any, dict[str, Any]]] = {}


def _described(policy: Policy, purpose: T, describe: Callable[[Policy, T, str], dict[str, Any]],
               language: str) -> dict[str, Any]:
    """``describe(policy, purpose, language)``, worked out once per policy, purpose definition
    and language.

    Both are replaced, never changed, when an officer edits a purpose or the policy is
    reloaded, so the objects themselves are the key (held in the entry, so that their ids
    cannot be reused while it exists). Receipts are serialised, never modified in place.
    """
    key = (id(policy), id(purpose), describe, language)
    hit = _descriptions.get(key)
    if hit is not None and hit[0] is policy and hit[1] is purpose:
        return hit[2]
    if len(_descriptions) >= 512:
        _descriptions.clear()
    described = describe(policy, purpose, language)
    _descriptions[key] = (policy, purpose, described)
    return described


def build_receipt(
    policy: Policy,
    subject_id: str,
    consents: list[dict[str, Any]],
    purposes: dict[str, PurposeDef],
    source: dict[str, Any],
    now: dt.datetime,
    language: str = DEFAULT_LANGUAGE,
) -> dict[str, Any]:
    """The unsigned receipt for one recording (``consents``: code, status, notice, hash), in
    ``language``."""
    controller, language = policy.controller, supported(language)
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": controller.get("jurisdiction") or "SE",
        "consentTimestamp": int(now.timestamp()),
        "collectionMethod": " / ".join(str(source[k]) for k in ("form", "channel") if source.get(k)) or "api",
        "consentReceiptID": new_id(),
        "language": language,
        "piiPrincipalId": subject_id,
        "piiControllers": [_described(policy, None, _controller_entry, language)],
        "policyUrl": controller.get("privacy_policy_url") or "",
        "services": [{"service": controller["name"], "purposes": [
            _described(policy, purposes[c["purpose"]], _kantara_purpose, language) for c in consents]}],
        "sensitive": False,
        "spiCat": [],
        "recorded_at": timestamp(now),
        "collector": source,
        "consents": consents,
    }
