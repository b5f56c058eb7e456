"""Consent receipts after the Kantara Initiative Consent Receipt Specification v1.1.

A receipt names the subject only by the pseudonymous subject id, lists each purpose with
its legal basis, notice version and notice text hash, and is signed (JWS compact, EdDSA)
with the key published at ``GET /v1/receipts/keys``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from privacy.ids import new_id
from privacy.ledger import timestamp
from privacy.policy.file import Policy, PurposeDef

KANTARA_VERSION = "KI-CR-v1.1.0"
T = TypeVar("T")


def _termination(purpose: PurposeDef) -> str:
    if purpose.legal_basis == "consent":
        text = "Withdraw at any time: the link in every e-mail, or the preference centre."
        if purpose.consent_valid_days:
            text += f" Consent lapses after {purpose.consent_valid_days} days unless renewed."
    else:
        text = f"Ends with the {purpose.legal_basis.replace('_', ' ')}."
    if purpose.retention:
        r = purpose.retention
        text += f" Data is {r['action']}d {r['period_days']} days after {r['after'].replace('_', ' ')}."
    return text


def _controller_entry(policy: Policy, _: None) -> dict[str, Any]:
    controller = policy.controller
    entry: dict[str, Any] = {
        "piiController": controller["name"], "contact": controller["contact"], "address": controller["address"],
        "email": controller["email"], "phone": controller["phone"],
    }
    if controller.get("url"):
        entry["piiControllerUrl"] = controller["url"]
    return entry


def _kantara_purpose(policy: Policy, p: PurposeDef) -> dict[str, Any]:
    others = [r for r in p.recipients if r != policy.controller["name"]]
    item: dict[str, Any] = {
        "purpose": p.name.get("en") or next(iter(p.name.values())),
        "purposeCategory": [p.category or p.legal_basis],
        "consentType": "EXPLICIT",
        "piiCategory": sorted({policy.fields[f].category for f in p.fields if f in policy.fields}),
        "primaryPurpose": p.legal_basis == "contract",
        "termination": _termination(p),
        "thirdPartyDisclosure": bool(others),
    }
    if others:
        item["thirdPartyName"] = ", ".join(others)
    return item


_descriptions: dict[tuple[int, int, Any], tuple[Policy, Any, dict[str, Any]]] = {}


def _described(policy: Policy, purpose: T, describe: Callable[[Policy, T], dict[str, Any]]) -> dict[str, Any]:
    """``describe(policy, purpose)``, worked out once per policy and purpose definition.

    Both are replaced, never changed, when an officer edits a purpose or the policy is
    reloaded, so the objects themselves are the key (held in the entry, so that their ids
    cannot be reused while it exists). Receipts are serialised, never modified in place.
    """
    key = (id(policy), id(purpose), describe)
    hit = _descriptions.get(key)
    if hit is not None and hit[0] is policy and hit[1] is purpose:
        return hit[2]
    if len(_descriptions) >= 512:
        _descriptions.clear()
    described = describe(policy, purpose)
    _descriptions[key] = (policy, purpose, described)
    return described


def build_receipt(
    policy: Policy,
    subject_id: str,
    consents: list[dict[str, Any]],
    purposes: dict[str, PurposeDef],
    source: dict[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """The unsigned receipt for one recording (``consents``: code, status, notice, hash)."""
    controller = policy.controller
    return {
        "version": KANTARA_VERSION,
        "jurisdiction": controller.get("jurisdiction") or "SE",
        "consentTimestamp": int(now.timestamp()),
        "collectionMethod": " / ".join(str(source[k]) for k in ("form", "channel") if source.get(k)) or "api",
        "consentReceiptID": new_id(),
        "language": "en",
        "piiPrincipalId": subject_id,
        "piiControllers": [_described(policy, None, _controller_entry)],
        "policyUrl": controller.get("privacy_policy_url") or "",
        "services": [{"service": controller["name"], "purposes": [
            _described(policy, purposes[c["purpose"]], _kantara_purpose) for c in consents]}],
        "sensitive": False,
        "spiCat": [],
        "recorded_at": timestamp(now),
        "collector": source,
        "consents": consents,
    }
