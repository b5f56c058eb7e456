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
from privacy.languages import DEFAULT_LANGUAGE, in_language, supported, with_language
from privacy.mail.mailer import OutgoingMail
from privacy.policy.catalogue import Catalogue

DOUBLE_OPT_IN = "double_opt_in"


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Please confirm your subscription",
        "intro": "Please confirm that you want to receive:",
        "confirm": "Confirm here: {link}",
        "validity": ("The link is valid for {days} days. If you did not ask for this, "
                     "ignore this e-mail and nothing will be sent to you."),
        "withdraw": "To withdraw at any time:",
    },
    "sv": {
        "subject": "Bekräfta din prenumeration",
        "intro": "Bekräfta att du vill få:",
        "confirm": "Bekräfta här: {link}",
        "validity": ("Länken gäller i {days} dagar. Om det inte var du som anmälde dig kan du bortse "
                     "från det här mejlet: vi skickar ingenting till dig."),
        "withdraw": "Du kan när som helst återkalla ditt samtycke:",
    },
}


def double_opt_in_note(subject_id: str, email: str, token: str, purposes: list[str], days: int,
                       language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """What the outbox keeps (sealed) for a double opt-in mail."""
    return {"template": DOUBLE_OPT_IN, "subject_id": subject_id, "to": email, "token": token,
            "purposes": purposes, "days": days, "language": language}


def withdraw_url(ctx: PrivacyContext, subject_id: str, purpose: str) -> str:
    """The one-click withdraw link of ``purpose``: its token is a MAC, so it cannot be forged."""
    return unsubscribe.withdraw_url(ctx.crypto, ctx.public_url, subject_id, purpose)


def double_opt_in_mail(ctx: PrivacyContext, catalogue: Catalogue, note: dict[str, Any]) -> OutgoingMail:
    """The mail of a :func:`double_opt_in_note`, in its language (notes queued before mails had
    one are in English); its links open pages in that language too."""
    purposes, days, lang = note["purposes"], note["days"], supported(note.get("language"))
    words = TEXTS[lang]
    confirm = with_language(f"{ctx.public_url}/v1/consents/confirm/{note['token']}", lang)
    names = [_name(catalogue, code, lang) for code in purposes]
    withdraw = [with_language(withdraw_url(ctx, note["subject_id"], code), lang) for code in purposes]
    lines = [words["intro"], *[f"  - {n}" for n in names], "",
             words["confirm"].format(link=confirm), "",
             words["validity"].format(days=days), "",
             words["withdraw"], *[f"  {u}" for u in withdraw]]
    return OutgoingMail(to=note["to"], subject=words["subject"], text="\n".join(lines),
                        headers=unsubscribe.mail_headers(withdraw[0]))


def _name(catalogue: Catalogue, code: str, lang: str) -> str:
    """A purpose's name in ``lang``, else in English, else its code."""
    purpose = catalogue.purposes.get(code)
    return in_language(purpose.name if purpose else None, lang, code)
