"""The languages the service writes to customers in: mails, the pages their links open,
and access packages."""
from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("sv", "en")
DEFAULT_LANGUAGE = "en"


def supported(language: str | None) -> str:
    """``language`` if the service writes in it, else the default."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def in_language(texts: Mapping[str, str] | None, language: str, fallback: str) -> str:
    """A text of the policy's (a purpose's name, a field's label) in ``language``, else in
    English, else ``fallback`` (its code)."""
    texts = texts or {}
    return texts.get(language) or texts.get(DEFAULT_LANGUAGE) or fallback


def with_language(url: str, language: str) -> str:
    """``url`` (a mailed link) naming the mail's language, so that the page it opens speaks it."""
    return f"{url}{'&' if '?' in url else '?'}lang={supported(language)}"
