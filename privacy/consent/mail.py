"""The double opt-in mail: queued as a small sealed note in the sign-up, written when sent.

A sign-up only queues what the mail needs (address, link token, purposes, validity) in
the outbox, sealed under the subject's data key like any queued mail; the outbox
deliverer writes the text, the confirm link and the one-click withdraw links (a MAC each)
when it sends it. The sign-up request, which forms wait for, then does none of that work
(0.15 M of its 3.8 M instructions, ``python -m bench.instructions``).
"""
from __future__ import annotations

from typing import Any

from privacy.consent import unsubscribe
from privacy.context import PrivacyContext
from privacy.mail.mailer import OutgoingMail
from privacy.policy.catalogue import Catalogue

DOUBLE_OPT_IN = "double_opt_in"


def double_opt_in_note(subject_id: str, email: str, token: str, purposes: list[str], days: int) -> dict[str, Any]:
    """What the outbox keeps (sealed) for a double opt-in mail."""
    return {"template": DOUBLE_OPT_IN, "subject_id": subject_id, "to": email, "token": token,
            "purposes": purposes, "days": days}


def withdraw_url(ctx: PrivacyContext, subject_id: str, purpose: str) -> str:
    """The one-click withdraw link of ``purpose``: its token is a MAC, so it cannot be forged."""
    return unsubscribe.withdraw_url(ctx.crypto, ctx.public_url, subject_id, purpose)


def double_opt_in_mail(ctx: PrivacyContext, catalogue: Catalogue, note: dict[str, Any]) -> OutgoingMail:
    """The mail of a :func:`double_opt_in_note`."""
    purposes, days = note["purposes"], note["days"]
    confirm = f"{ctx.public_url}/v1/consents/confirm/{note['token']}"
    names = [p.name.get("en", code) if (p := catalogue.purposes.get(code)) else code for code in purposes]
    withdraw = [withdraw_url(ctx, note["subject_id"], code) for code in purposes]
    lines = ["Please confirm that you want to receive:", *[f"  - {n}" for n in names], "",
             f"Confirm here: {confirm}", "",
             f"The link is valid for {days} days. If you did not ask for this, "
             "ignore this e-mail and nothing will be sent to you.", "",
             "To withdraw at any time:", *[f"  {u}" for u in withdraw]]
    return OutgoingMail(to=note["to"], subject="Please confirm your subscription", text="\n".join(lines),
                        headers=unsubscribe.mail_headers(withdraw[0]))
