"""The policy file's schema: what each key may hold, validated with marshmallow.

The same purpose schema validates ``PUT /v1/purposes/{code}`` bodies. Loading the YAML,
naming the line of an error and building the policy objects is :mod:`privacy.policy.file`.
"""
from __future__ import annotations

import re
import zoneinfo
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, validate, validates_schema
from marshmallow import fields as mf

from privacy.policy.fields import COUNTRY_CODES, FIELD_TYPES
from privacy.policy.validation import StrictBoolean, StrictSchema, text

LEGAL_BASES = ("consent", "contract", "legal_obligation", "legitimate_interest", "vital_interest", "public_task")
RETENTION_CLOCKS = ("last_activity", "withdrawal", "collection", "consent_expiry")
RETENTION_ACTIONS = ("delete", "anonymise")
CONNECTOR_TYPES = ("webhook", "hubspot", "mailchimp", "klaviyo", "salesforce", "voyado", "sql", "manual")
CONNECTOR_OPERATIONS = ("access", "erasure", "rectification", "restriction", "consent")
POSTAL_ADDRESS_KEYS = ("streetAddress", "postalCode", "addressLocality", "addressRegion", "addressCountry",
                       "postOfficeBoxNumber")
CATEGORIES = ("contact", "identity", "location", "demographic", "behaviour", "financial", "preference", "other")
DEFAULT_AGE_OF_CONSENT = {"SE": 13, "DK": 13, "FI": 13, "NO": 13, "DE": 16, "NL": 16, "IE": 16}
CODE_PATTERN = r"[a-z][a-z0-9_]{0,63}"
CONNECTOR_NAME = validate.Regexp(r"^[a-z][a-z0-9_-]{0,63}$",
                                 error="must be lower case letters, digits, '-' or '_', 1-64 characters")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
CODE = validate.Regexp(f"^{CODE_PATTERN}$", error="must be lower_snake_case, 1-64 characters")


# Every scheduled job (``retention.jobs.JOBS`` and the rate limiter's clean-up the web shell
# adds): the names a ``scheduler.jobs`` entry may configure. Kept here because the policy
# knows nothing of the scheduler; a test checks the two agree.
SCHEDULED_JOBS = ("deadline_watch", "expire_consents", "expire_requests", "forget_closed_requests",
                  "forget_finished_tasks", "ledger_anchor", "process_requests", "purge_confirmations",
                  "purge_idempotency_keys", "purge_packages", "purge_rate_limits", "reconcile_connectors",
                  "release_legal_holds", "retention_sweep", "send_mail")
TIME_OF_DAY = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error="must be a time of day HH:MM, 00:00 to 23:59")

DEFAULT_AUTHORITY = {"name": "Integritetsskyddsmyndigheten (IMY)", "url": "https://www.imy.se"}


def _known_time_zone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"'{name}' is not a known time zone (IANA name, e.g. Europe/Stockholm)") from None


def one_of(choices: tuple[str, ...]) -> validate.OneOf:
    return validate.OneOf(choices, error="'{input}' is not one of " + ", ".join(choices))


class FieldSchema(StrictSchema):
    category = mf.String(required=True, validate=one_of(CATEGORIES))
    type = mf.String(required=True, validate=one_of(FIELD_TYPES))
    identifier = mf.Boolean(load_default=False)
    max_length = mf.Integer(load_default=None, validate=validate.Range(min=1, max=10000))
    label = mf.Dict(keys=text(validate.Length(min=2, max=8)), values=text(validate.Length(min=1, max=100)),
                    load_default=None)


class NoticeSchema(StrictSchema):
    version = text(validate.Length(min=1, max=64), required=True)
    text = text(validate.Length(min=1, max=100_000), multiline=True, required=True)


class RetentionSchema(StrictSchema):
    period_days = mf.Integer(strict=True, required=True, validate=validate.Range(min=0, max=36500))
    after = mf.String(required=True, validate=one_of(RETENTION_CLOCKS))
    action = mf.String(required=True, validate=one_of(RETENTION_ACTIONS))


class PurposeBodySchema(StrictSchema):
    """A purpose as written in the policy file, without its code (the PUT body)."""

    name = mf.Dict(keys=text(validate.Length(min=2, max=8)), values=text(validate.Length(min=1, max=200)),
                   required=True, validate=validate.Length(min=1))
    description = text(validate.Length(max=2000), multiline=True, load_default=None)
    category = text(validate.Length(min=1, max=100), load_default=None)
    legal_basis = mf.String(required=True, validate=one_of(LEGAL_BASES))
    fields = mf.List(text(validate.Length(min=1, max=64)), required=True)  # type: ignore[assignment]
    double_opt_in = StrictBoolean(load_default=False)
    consent_valid_days = mf.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=36500))
    gpc_opt_out = StrictBoolean(load_default=False)
    recipients = mf.List(text(validate.Length(min=1, max=200)), load_default=list)
    notice = mf.Nested(NoticeSchema, load_default=None)
    retention = mf.Nested(RetentionSchema, load_default=None)

    @validates_schema
    def _consent_only_options(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("legal_basis") != "consent":
            for key in ("double_opt_in", "gpc_opt_out", "consent_valid_days"):
                if data.get(key):
                    raise ValidationError("only a purpose with legal_basis consent may set it", key)


class PurposeSchema(PurposeBodySchema):
    code = mf.String(required=True, validate=CODE)


class LegalHoldSchema(StrictSchema):
    code = mf.String(required=True, validate=CODE)
    description = mf.String(required=True)
    fields = mf.List(mf.String(), required=True, validate=validate.Length(min=1))  # type: ignore[assignment]
    period_days = mf.Integer(required=True, validate=validate.Range(min=1, max=36500))
    applies_to = mf.List(mf.String(validate=CODE), load_default=None, metadata={
        "description": "purposes whose subjects the hold covers; default: every purpose with legal basis "
                       "contract or legal_obligation"})


class RetrySchema(StrictSchema):
    initial_delay_s = mf.Float(load_default=30, validate=validate.Range(min=0))
    max_delay_s = mf.Float(load_default=3600, validate=validate.Range(min=0))
    deadline_hours = mf.Float(load_default=72, validate=validate.Range(min=0))

    @validates_schema
    def _delays_in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("max_delay_s", 3600) < data.get("initial_delay_s", 30):
            raise ValidationError({"max_delay_s": ["must not be below initial_delay_s"]})


class ConnectorSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # type-specific settings (url, token_env, ...) are kept raw below

    name = mf.String(required=True, validate=CONNECTOR_NAME)
    type = mf.String(required=True, validate=one_of(CONNECTOR_TYPES))
    operations = mf.List(mf.String(validate=one_of(CONNECTOR_OPERATIONS)),
                             load_default=lambda: list(CONNECTOR_OPERATIONS))
    retry = mf.Nested(RetrySchema, load_default=lambda: RetrySchema().load({}))
    timeout_s = mf.Float(load_default=10, validate=validate.Range(min=0.1, max=600))
    max_in_flight = mf.Integer(load_default=4, strict=True, validate=validate.Range(min=1, max=64))
    # Checked against the catalogue below; the connector reads them from its settings.
    fields = mf.Dict(keys=mf.String(), values=mf.String(allow_none=True), load_default=None)  # type: ignore[assignment]
    purposes = mf.List(mf.String(), load_default=None)

    @validates_schema(pass_original=True)
    def _secret_names(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        """Secrets come only from the environment variables named by ``*_env`` keys."""
        if not isinstance(original, dict):
            return
        for key, value in original.items():
            if key.endswith("_env") and not (isinstance(value, str) and ENV_NAME.fullmatch(value)):
                raise ValidationError({key: ["must name an environment variable (A-Z, 0-9, _)"]})


class ControllerSchema(StrictSchema):
    name = mf.String(required=True)
    contact = mf.String(load_default="")
    email = mf.String(load_default="")
    officer_email = mf.String(load_default="", metadata={
        "description": "where the daily deadline watch is mailed (controller.email if empty)"})
    phone = mf.String(load_default="")
    address = mf.Dict(keys=mf.String(validate=one_of(POSTAL_ADDRESS_KEYS)), values=mf.String(), load_default=dict,
                      metadata={"description": "schema.org PostalAddress, as Kantara receipts require"})
    url = mf.String(load_default=None)
    privacy_policy_url = mf.String(load_default="")
    jurisdiction = mf.String(load_default="SE")
    time_zone = mf.String(load_default="Europe/Stockholm", validate=_known_time_zone,
                          metadata={"description": "where request deadlines (Art. 12(3)) are counted"})
    supervisory_authority = mf.Dict(keys=mf.String(validate=one_of(("name", "url"))), values=mf.String(),
                                    load_default=lambda: dict(DEFAULT_AUTHORITY),
                                    metadata={"description": "named in refusals: the right to complain"})


class JobScheduleSchema(StrictSchema):
    every_s = mf.Integer(strict=True, validate=validate.Range(min=1, max=7 * 86400),
                         metadata={"description": "run every so many seconds"})
    at = mf.String(validate=TIME_OF_DAY, metadata={"description": "run daily at HH:MM in controller.time_zone"})

    @validates_schema
    def _one_trigger(self, data: dict[str, Any], **_: Any) -> None:
        if ("every_s" in data) == ("at" in data):
            raise ValidationError("give either every_s or at")


class SchedulerSchema(StrictSchema):
    jobs = mf.Dict(keys=mf.String(validate=one_of(SCHEDULED_JOBS)), values=mf.Nested(JobScheduleSchema),
                   load_default=dict)


class AgeOfConsentSchema(StrictSchema):
    default = mf.Integer(load_default=16, validate=validate.Range(min=13, max=16))
    countries = mf.Dict(keys=mf.String(validate=validate.OneOf(sorted(COUNTRY_CODES),
                                                                       error="'{input}' is not a country code")),
                            values=mf.Integer(validate=validate.Range(min=13, max=16)),
                            load_default=dict)


class PolicySchema(StrictSchema):
    controller = mf.Nested(ControllerSchema, load_default=lambda: {"name": "Data controller", "contact": "",
                                                                       "email": "", "officer_email": "",
                                                                       "phone": "", "address": {},
                                                                       "url": None, "privacy_policy_url": "",
                                                                       "jurisdiction": "SE",
                                                                       "time_zone": "Europe/Stockholm",
                                                                       "supervisory_authority":
                                                                           dict(DEFAULT_AUTHORITY)})
    fields = mf.Dict(keys=mf.String(validate=CODE), values=mf.Nested(FieldSchema), required=True)  # type: ignore[assignment]
    purposes = mf.List(mf.Nested(PurposeSchema), required=True, validate=validate.Length(min=1))
    legal_holds = mf.List(mf.Nested(LegalHoldSchema), load_default=list)
    connectors = mf.List(mf.Nested(ConnectorSchema), load_default=list)
    age_of_consent = mf.Nested(AgeOfConsentSchema, load_default=lambda: {"default": 16, "countries": {}})
    scheduler = mf.Nested(SchedulerSchema, load_default=lambda: {"jobs": {}})

    @validates_schema
    def _references(self, data: dict[str, Any], **_: Any) -> None:
        catalogue = data.get("fields", {})
        errors: dict[str, Any] = {}
        for key in ("purposes", "legal_holds", "connectors"):
            seen: set[str] = set()
            for i, item in enumerate(data.get(key, [])):
                code = item.get("code") or item.get("name")
                if code in seen:
                    label = "name" if key == "connectors" else "code"
                    errors.setdefault(key, {})[i] = {label: [f"'{code}' is declared twice"]}
                seen.add(code)
                for j, name in enumerate(item.get("fields") or []):
                    if name not in catalogue:
                        errors.setdefault(key, {}).setdefault(i, {}).setdefault("fields", {})[j] = [
                            f"'{name}' is not in the fields catalogue"
                        ]
        codes = {p.get("code") for p in data.get("purposes", [])}
        for key, attribute in (("legal_holds", "applies_to"), ("connectors", "purposes")):
            for i, item in enumerate(data.get(key, [])):
                for j, code in enumerate(item.get(attribute) or []):
                    if code not in codes:
                        errors.setdefault(key, {}).setdefault(i, {}).setdefault(attribute, {})[j] = [
                            f"'{code}' is not a declared purpose"]
        identifiers = [name for name, spec in catalogue.items() if spec.get("identifier")]
        if identifiers != ["email"]:
            errors["fields"] = ["exactly one identifier field is supported, and it must be 'email'"]
        if errors:
            raise ValidationError(errors)
