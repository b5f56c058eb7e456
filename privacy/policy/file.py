"""The policy file: personal-data catalogue, purposes, legal holds, connectors.

Loaded from YAML and validated at start-up against :mod:`privacy.policy.schema`; an
invalid file stops the service with a message naming the key path and the line, e.g.
``purposes[1].legal_basis: 'consnet' is not one of consent, contract, ... (line 23)``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from privacy.languages import in_language
from privacy.policy.fields import FieldValueError, normalise
from privacy.policy.schema import DEFAULT_AGE_OF_CONSENT, PolicySchema, PurposeBodySchema

DEFAULT_POLICY_FILE = Path(__file__).parent / "policies" / "example.yaml"


@dataclass(frozen=True)
class FieldDef:
    name: str
    category: str
    type: str
    identifier: bool = False
    max_length: int | None = None
    label: dict[str, str] | None = field(default=None, hash=False)  # language -> what customers read

    def label_in(self, language: str) -> str:
        """What a customer reading ``language`` calls this field: its label in that language,
        else in English, else its name."""
        return in_language(self.label, language, self.name)


@dataclass(frozen=True)
class PurposeDef:
    code: str
    name: dict[str, str]
    legal_basis: str
    fields: tuple[str, ...]
    double_opt_in: bool = False
    consent_valid_days: int | None = None
    gpc_opt_out: bool = False
    recipients: tuple[str, ...] = ()
    notice: dict[str, str] | None = None
    retention: dict[str, Any] | None = None
    description: str | None = None
    category: str | None = None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PurposeDef:
        return cls(
            code=data["code"], name=dict(data["name"]), legal_basis=data["legal_basis"],
            fields=tuple(data["fields"]), double_opt_in=data.get("double_opt_in", False),
            consent_valid_days=data.get("consent_valid_days"), gpc_opt_out=data.get("gpc_opt_out", False),
            recipients=tuple(data.get("recipients") or ()), notice=data.get("notice"),
            retention=data.get("retention"), description=data.get("description"), category=data.get("category"),
        )

    def to_data(self) -> dict[str, Any]:
        """The purpose as plain data, the same shape the policy file and the API use."""
        return {
            "code": self.code, "name": self.name, "description": self.description, "category": self.category,
            "legal_basis": self.legal_basis, "fields": list(self.fields), "double_opt_in": self.double_opt_in,
            "consent_valid_days": self.consent_valid_days, "gpc_opt_out": self.gpc_opt_out,
            "recipients": list(self.recipients), "notice": self.notice, "retention": self.retention,
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_data(), sort_keys=True).encode()).hexdigest()

    @property
    def needs_consent(self) -> bool:
        return self.legal_basis == "consent"


@dataclass(frozen=True)
class LegalHold:
    code: str
    description: str
    fields: tuple[str, ...]
    period_days: int
    applies_to: tuple[str, ...] | None = None  # None: every contract or legal-obligation purpose

    def covers(self, purposes: dict[str, PurposeDef], had: set[str]) -> bool:
        """Whether a subject who had the purposes ``had`` falls under this hold."""
        if self.applies_to is not None:
            return bool(had & set(self.applies_to))
        return any(code in purposes and purposes[code].legal_basis in ("contract", "legal_obligation")
                   for code in had)


@dataclass(frozen=True)
class ConnectorDef:
    name: str
    type: str
    operations: tuple[str, ...]
    retry: dict[str, float]
    timeout_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    max_in_flight: int = 4

    def secret_variables(self) -> dict[str, str]:
        """The environment variables this connector takes its secrets from, by setting
        (``token_env: HUBSPOT_TOKEN`` → ``{"token_env": "HUBSPOT_TOKEN"}``)."""
        return {k: v for k, v in self.settings.items() if k.endswith("_env") and isinstance(v, str)}

    def missing_secrets(self, environ: Mapping[str, str]) -> list[str]:
        """The named variables that are unset or empty in ``environ`` (names only, never values)."""
        return sorted(name for name in self.secret_variables().values() if not environ.get(name))


@dataclass(frozen=True)
class Policy:
    fields: dict[str, FieldDef]
    purposes: tuple[PurposeDef, ...]
    legal_holds: tuple[LegalHold, ...]
    connectors: tuple[ConnectorDef, ...]
    controller: dict[str, Any]
    age_of_consent: dict[str, int]
    default_age_of_consent: int
    source: str = "<memory>"
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)  # scheduler.jobs: name → every_s | at

    def missing_secrets(self, environ: Mapping[str, str]) -> dict[str, list[str]]:
        """Per connector, the secret variables it names that ``environ`` does not set."""
        return {c.name: missing for c in self.connectors if (missing := c.missing_secrets(environ))}

    def field_label(self, name: str, language: str) -> str:
        """A field's name as a customer reading ``language`` reads it (the name itself for a
        field the catalogue no longer has)."""
        spec = self.fields.get(name)
        return spec.label_in(language) if spec else name

    def age_of_consent_for(self, country: str | None) -> int:
        return self.age_of_consent.get(country or "", self.default_age_of_consent)

    def normalise_values(self, raw: dict[str, Any], path: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Personal values checked against the fields catalogue: (normalised values, problems
        by ``path.field``). A field outside the catalogue is a problem, never stored."""
        values: dict[str, str] = {}
        problems: dict[str, list[str]] = {}
        for name, value in raw.items():
            spec = self.fields.get(name)
            if spec is None:
                problems[f"{path}.{name}"] = [f"'{name}' is not in the fields catalogue"]
                continue
            try:
                values[name] = normalise(spec.type, value, spec.max_length)
            except FieldValueError as exc:
                problems[f"{path}.{name}"] = [str(exc)]
        return values, problems


class PolicyError(Exception):
    """An invalid policy file; the message names every bad key with its line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid policy file {source}:\n  " + "\n  ".join(problems))


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested error dict into ``{"purposes[1].legal_basis": [...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub, msgs in flatten_errors(value, path).items():
                out.setdefault(sub, []).extend(msgs)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_body"] = list(messages)
    elif isinstance(messages, list):
        for msg in messages:
            for sub, msgs in flatten_errors(msg, prefix).items():
                out.setdefault(sub, []).extend(msgs)
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


def _line_map(node: yaml.Node, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = f"{path}.{key_node.value}" if path else str(key_node.value)
            out[sub] = key_node.start_mark.line + 1
            _line_map(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, f"{path}[{i}]", out)
    return out


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return None


def parse_policy(text: str, source: str = "<memory>") -> Policy:
    """Parse and validate policy YAML; raise :class:`PolicyError` naming key and line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise PolicyError(source, [f"not valid YAML: {getattr(exc, 'problem', exc)}{where}"]) from exc
    if not isinstance(data, dict) or root is None:
        raise PolicyError(source, ["the file must be a mapping with fields and purposes"])
    lines = _line_map(root)
    try:
        loaded = PolicySchema().load(data)
    except ValidationError as exc:
        problems = []
        for path, msgs in sorted(flatten_errors(exc.messages).items()):
            line = _line_of(path, lines)
            for msg in msgs:
                problems.append(f"{path}: {msg}" + (f" (line {line})" if line else ""))
        raise PolicyError(source, problems) from exc
    return _build(loaded, data, source)


def _build(loaded: dict[str, Any], raw: dict[str, Any], source: str) -> Policy:
    catalogue = {name: FieldDef(name=name, **spec) for name, spec in loaded["fields"].items()}
    connectors = []
    for spec, raw_spec in zip(loaded["connectors"], raw.get("connectors") or [], strict=True):
        known = {"name", "type", "operations", "retry", "timeout_s", "max_in_flight"}
        connectors.append(ConnectorDef(
            name=spec["name"], type=spec["type"], operations=tuple(spec["operations"]), retry=dict(spec["retry"]),
            timeout_s=spec["timeout_s"], settings={k: v for k, v in raw_spec.items() if k not in known},
            max_in_flight=spec["max_in_flight"],
        ))
    ages = dict(DEFAULT_AGE_OF_CONSENT)
    ages.update(loaded["age_of_consent"]["countries"])
    return Policy(
        fields=catalogue,
        purposes=tuple(PurposeDef.from_data(p) for p in loaded["purposes"]),
        legal_holds=tuple(LegalHold(code=h["code"], description=h["description"], fields=tuple(h["fields"]),
                                    period_days=h["period_days"],
                                    applies_to=tuple(h["applies_to"]) if h.get("applies_to") is not None else None)
                          for h in loaded["legal_holds"]),
        connectors=tuple(connectors),
        controller=loaded["controller"],
        age_of_consent=ages,
        default_age_of_consent=loaded["age_of_consent"]["default"],
        source=source,
        schedules=dict(loaded["scheduler"]["jobs"]),
    )


def load_policy(path: str | Path | None = None) -> Policy:
    """Load the policy file at ``path`` (the bundled example when ``None``)."""
    file = Path(path) if path else DEFAULT_POLICY_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(file), [f"cannot read the file: {exc.strerror}"]) from exc
    return parse_policy(text, str(file))


def validate_purpose_body(code: str, body: dict[str, Any], policy: Policy) -> PurposeDef:
    """Validate a PUT body against the schema and the catalogue; raise ValidationError."""
    data = PurposeBodySchema().load(body)
    unknown = {i: [f"'{name}' is not in the fields catalogue"] for i, name in enumerate(data["fields"])
               if name not in policy.fields}
    if unknown:
        raise ValidationError({"fields": unknown})
    return PurposeDef.from_data({**data, "code": code})
