from __future__ import annotations

from marshmallow import Schema
from marshmallow import fields as mf

from api.docs import schema_keywords
from privacy.policy.schema import PurposeBodySchema

# PurposeBodySchema._consent_only_options: only a consent purpose may set these.
schema_keywords({"if": {"not": {"properties": {"legal_basis": {"const": "consent"}}, "required": ["legal_basis"]}},
                 "then": {"properties": {"double_opt_in": {"const": False}, "gpc_opt_out": {"const": False},
                                         "consent_valid_days": {"type": "null"}}}})(PurposeBodySchema)


class PurposeOutSchema(Schema):
    code = mf.String()
    name = mf.Dict(keys=mf.String(), values=mf.String())
    description = mf.String(allow_none=True)
    category = mf.String(allow_none=True)
    legal_basis = mf.String()
    fields = mf.List(mf.String())  # type: ignore[assignment]
    double_opt_in = mf.Boolean()
    consent_valid_days = mf.Integer(allow_none=True)
    gpc_opt_out = mf.Boolean()
    recipients = mf.List(mf.String())
    notice = mf.Dict(allow_none=True, metadata={"description": "current notice: version, text, text_hash"})
    notice_versions = mf.List(mf.String())
    retention = mf.Dict(allow_none=True)
    origin = mf.String(metadata={"enum": ["file", "api"]})


class PurposeListSchema(Schema):
    purposes = mf.List(mf.Nested(PurposeOutSchema))


__all__ = ["PurposeBodySchema", "PurposeListSchema", "PurposeOutSchema"]
