"""The record of processing activities (GDPR Art. 30(1)) from the policy file: what the
controller declares, per purpose, and the measures this service itself takes."""
from __future__ import annotations

from typing import Any

from exports.report_texts import SECURITY, TEXTS
from privacy.languages import in_language
from privacy.policy.file import ConnectorDef, Policy, PurposeDef


def processing_record(policy: Policy, lang: str) -> dict[str, Any]:
    """The record in ``lang``: controller, purposes, security measures."""
    texts = TEXTS[lang]
    controller = policy.controller
    return {
        "report": "processing",
        "language": lang,
        "controller": {"name": controller.get("name", ""), "contact": controller.get("contact", ""),
                       "dpo_email": controller.get("email", ""), "address": _address(controller.get("address"))},
        "purposes": [_purpose(p, policy, texts, lang) for p in policy.purposes],
        "security_measures": [texts[key] for key in SECURITY],
    }


def _address(address: Any) -> str:
    if isinstance(address, dict):
        keys = ("streetAddress", "postalCode", "addressLocality", "addressCountry")
        return ", ".join(str(address[k]) for k in keys if address.get(k))
    return str(address or "")


def _holds(connector: ConnectorDef, code: str) -> bool:
    """A connector holds a purpose's data when it names the purpose, or names none."""
    purposes = connector.settings.get("purposes")
    return not purposes or code in purposes


def _purpose(purpose: PurposeDef, policy: Policy, texts: dict[str, str], lang: str) -> dict[str, Any]:
    systems = [c for c in policy.connectors if _holds(c, purpose.code)]
    transfers = [f"{c.name}: {c.settings['transfers']}" for c in systems if c.settings.get("transfers")]
    member = purpose.legal_basis == "contract"
    return {
        "code": purpose.code,
        "name": in_language(purpose.name, lang, purpose.code),
        "legal_basis": purpose.legal_basis,
        "data_categories": sorted({policy.fields[f].category for f in purpose.fields if f in policy.fields}),
        "subject_categories": [texts["members"] if member else texts["customers"]],
        "recipients": [*purpose.recipients, *(c.name for c in systems)],
        "transfers": transfers or [texts["none_declared"]],
        "retention": rule_in_words(purpose.retention, texts),
    }


def rule_in_words(rule: dict[str, Any] | None, texts: dict[str, str]) -> str:
    if not rule:
        return texts["no_rule"]
    return texts["rule"].format(action=texts.get(rule["action"], rule["action"]), days=rule["period_days"],
                                after=texts.get(f"after_{rule['after']}", rule["after"]))
