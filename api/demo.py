"""Demo data for a first look: members of a loyalty club with a mix of consents."""
from __future__ import annotations

import random

from sqlalchemy import select

from api.db import db
from api.services import consent_service, request_service, unit_of_work
from privacy.apikeys import create_key, revoke_key
from privacy.consent.service import ConsentCommand
from privacy.context import utcnow
from privacy.requests.service import RequestCommand
from privacy.storage.models import ApiKey, DataRequest

FIRST = ["Anna", "Erik", "Sara", "Lars", "Maja", "Johan", "Elin", "Oskar", "Ida", "Nils", "Freja", "Mikko"]
LAST = ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsen", "Virtanen", "Hansen"]
COUNTRIES = ["SE", "SE", "SE", "NO", "DK", "FI"]
DEMO_KEYS = {"demo-signup": ["consent:write"], "demo-marketing": ["consent:read"],
             "demo-officer": ["requests:manage"], "demo-admin": ["admin"]}


def load_demo(members: int = 60, seed: int = 7) -> tuple[int, dict[str, str], list[str]]:
    """Record ``members`` sign-ups (idempotent by e-mail) and issue fresh demo API keys."""
    rng = random.Random(seed)
    service = consent_service()
    samples: list[str] = []
    for n in range(members):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        born = f"{rng.randint(1950, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        subject = {"email": f"{first}.{last}.{n}@example.se".lower(), "first_name": first, "last_name": last,
                   "country": rng.choice(COUNTRIES), "birth_date": born, "postal_code": f"{rng.randint(10000, 98999)}"}
        purposes = {"loyalty_club": True, "marketing_email": rng.random() < 0.6, "sms": rng.random() < 0.3,
                    "profiling": rng.random() < 0.4}
        if n < 3:
            samples.append(subject["email"])
        service.record(ConsentCommand(purposes=purposes, subject=subject, notice_version="2026-11-01",
                                      source={"form": "demo-import", "channel": "store"}), utcnow())
    keys = {}
    with unit_of_work() as session:
        for name, scopes in DEMO_KEYS.items():
            for old in session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))):
                revoke_key(session, old.id, "cli:demo", utcnow())
            keys[name] = create_key(session, name, scopes, "cli:demo", utcnow())[1]
    open_demo_requests(samples)
    return members, keys, samples


def open_demo_requests(emails: list[str]) -> None:
    """On a first run, two data-subject requests for the officer's queue (mails in the mail drop)."""
    first_run = db.session.scalar(select(DataRequest.id).limit(1)) is None
    db.session.rollback()
    if not first_run:
        return
    service = request_service()
    service.open(RequestCommand(type="access", email=emails[0], language="sv"), utcnow())
    service.open(RequestCommand(type="rectification", email=emails[1], language="sv",
                                changes={"postal_code": "11122"}), utcnow())
