"""The one-click withdraw link of a purpose (RFC 8058), for our own mails and for others'.

The link names the subject and the purpose, with a MAC of both under the link key
(``Crypto.link_token("withdraw", ...)``): nothing is stored to make one or to check one,
so a bulk check can hand out 100,000 of them at the cost of an HMAC each. Its GET shows a
page with one button (mail scanners prefetch links); a POST withdraws at once, the
``List-Unsubscribe=One-Click`` POST of a mail client too
(:meth:`privacy.consent.links.ConsentLinks.withdraw_by_link`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from privacy.crypto.keys import Crypto

WITHDRAW_PATH = "/v1/consents/withdraw"
MAC_PART = "withdraw"
"""The MAC's first part: a withdraw token can never pass for a confirm token, or back."""
ONE_CLICK = "List-Unsubscribe=One-Click"
"""The ``List-Unsubscribe-Post`` header's value, and the body a mail client posts (RFC 8058)."""
_UNRESERVED = re.compile(r"[0-9A-Za-z_.~-]*").fullmatch  # a subject id (a UUID) needs no quoting


def withdraw_urls(crypto: Crypto, public_url: str, purpose: str) -> Callable[[str], str]:
    """A function giving the withdraw link of ``purpose`` for a subject id: the part
    common to every subject is made once (a bulk check makes one per allowed address)."""
    prefix = f"{public_url}{WITHDRAW_PATH}?subject="
    middle = f"&purpose={quote(purpose, safe='')}&token="
    token = crypto.link_tokens(MAC_PART)

    def url(subject_id: str) -> str:
        quoted = subject_id if _UNRESERVED(subject_id) else quote(subject_id, safe="")
        return f"{prefix}{quoted}{middle}{token(subject_id, purpose)}"

    return url


def withdraw_url(crypto: Crypto, public_url: str, subject_id: str, purpose: str) -> str:
    """The one-click withdraw link of ``purpose`` for ``subject_id``; its token is a MAC,
    so it cannot be forged."""
    return withdraw_urls(crypto, public_url, purpose)(subject_id)


def mail_headers(url: str) -> dict[str, str]:
    """The two headers that make ``url`` a one-click unsubscribe of a mail (RFC 2369, RFC 8058)."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK}
