"""The erasure receipt: signed proof the person can keep that each system erased them.

A JWS under the same published keys as consent receipts (``GET /v1/receipts/keys``). It
names the request, each system with what it really did (``outcome``) and when, and the
fields a legal hold keeps with the hold and its end; the person only by the pseudonymous
subject id.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from privacy.context import PrivacyContext, as_json_time
from privacy.storage.repositories.requests import RequestRecord
from privacy.storage.repositories.tasks import TaskRecord


def erasure_receipt(ctx: PrivacyContext, request: RequestRecord, tasks: list[TaskRecord], local: dict[str, Any],
                    now: dt.datetime) -> tuple[dict[str, Any], str]:
    """The receipt's claims and their compact JWS."""
    claims = {
        "type": "erasure-receipt", "iss": ctx.public_url, "request": request.id, "subject_id": request.subject_id,
        "received_at": as_json_time(request.received_at), "completed_at": as_json_time(now),
        "systems": [{"name": t.system, "status": t.status, "outcome": t.outcome,
                     "at": as_json_time(t.finished_at or t.updated_at)} for t in tasks],
        "held": list(local.get("held") or []),
    }
    return claims, ctx.crypto.sign_jws(claims)


def systems_lines(tasks: list[TaskRecord]) -> str:
    """One line per system for the closing mail: its name, what it did, when."""
    lines = []
    for t in tasks:
        what = t.outcome if t.status == "succeeded" else t.status
        lines.append(f"- {t.system}: {what}" + (f" ({as_json_time(t.finished_at)})" if t.finished_at else ""))
    return "\n".join(lines)
