"""Pages and answers of the links mailed to customers (confirm, withdraw, verify, download).

A mailed link's GET shows a page with one button, because mail scanners prefetch links;
only the button's POST acts. A browser gets a page back, a JSON client the JSON answer
(which the route's response schema then writes).

Pages speak the customer's language: the one the mail was written in (its links carry
``lang``), else the browser's best match (``Accept-Language``), else English. The page's
button posts to the same address, so the answer page speaks it too.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Response, render_template, request

from privacy.errors import ServiceError
from privacy.languages import DEFAULT_LANGUAGE, LANGUAGES

LANGUAGE_PARAM = "lang"
"""The query parameter a mailed link names its mail's language with."""

LANG_QUERY = {"in": "query", "name": LANGUAGE_PARAM, "required": False, "schema": {"type": "string"},
              "description": "the page's language (sv or en; mailed links name their mail's); anything else: "
                             "the browser's Accept-Language"}


class Words(NamedTuple):
    title: str
    message: str
    button: str = ""


PAGES: dict[str, dict[str, Words]] = {
    "en": {
        "consent.confirm": Words("Confirm your subscription", "Press the button to confirm.", "Confirm"),
        "consent.confirmed": Words("Thank you", "Your subscription is confirmed."),
        "consent.withdraw": Words("Withdraw consent", "Press the button and we stop at once.", "Withdraw"),
        "consent.withdrawn": Words("Withdrawn", "You will not be contacted for this any more."),
        "request.verify": Words("Confirm your request", "Press the button to confirm that this request is yours.",
                                "Confirm"),
        "request.verified": Words("Thank you", "Your request is confirmed. We will e-mail you when it is done."),
        "request.download": Words("Your data", "Press the button to download your data as a zip file.",
                                  "Download"),
        "task.confirm": Words("Confirm the task is done", "Press the button once the task in the mail is done.",
                              "It is done"),
        "task.confirmed": Words("Thank you", "The task is recorded as done."),
        "invalid": Words("Link not valid", ""),
    },
    "sv": {
        "consent.confirm": Words("Bekräfta din prenumeration", "Tryck på knappen för att bekräfta.", "Bekräfta"),
        "consent.confirmed": Words("Tack", "Din prenumeration är bekräftad."),
        "consent.withdraw": Words("Återkalla samtycke", "Tryck på knappen så slutar vi direkt.", "Återkalla"),
        "consent.withdrawn": Words("Återkallat", "Vi kontaktar dig inte längre för det här."),
        "request.verify": Words("Bekräfta din begäran", "Tryck på knappen för att bekräfta att begäran är din.",
                                "Bekräfta"),
        "request.verified": Words("Tack", "Din begäran är bekräftad. Vi mejlar dig när den är klar."),
        "request.download": Words("Dina uppgifter", "Tryck på knappen för att hämta dina uppgifter som en zip-fil.",
                                  "Hämta"),
        "task.confirm": Words("Bekräfta att uppgiften är gjord", "Tryck på knappen när uppgiften i mejlet är gjord.",
                              "Den är gjord"),
        "task.confirmed": Words("Tack", "Uppgiften är registrerad som gjord."),
        "invalid": Words("Länken gäller inte", ""),
    },
}

INVALID_BY_STATUS: dict[str, dict[int, str]] = {
    # What a Swedish page says when a link fails; English pages show the service's own message.
    "sv": {
        404: "Länken är ogiltig. Kontrollera att du har kopierat hela länken från mejlet.",
        409: "Länken har redan använts.",
        410: "Länken har gått ut eller har använts så många gånger som den får.",
        429: "För många försök. Vänta en stund och försök igen.",
    },
}


def page_language() -> str:
    """The language of a link's page: the link's ``lang``, else the browser's best match."""
    given = request.args.get(LANGUAGE_PARAM, "")
    if given in LANGUAGES:
        return given
    return customer_language(None)


def customer_language(given: str | None) -> str:
    """The language the customer asked for (``given``), else the best match of the request's
    ``Accept-Language``, else English."""
    return given or request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def page(name: str, status: int = 200, message: str | None = None) -> Response:
    """The page ``name`` of :data:`PAGES` in :func:`page_language`. A page with a button (the
    link's GET) posts to its own address, query string and all."""
    lang = page_language()
    words = PAGES[lang][name]
    action = request.full_path.rstrip("?") if words.button else None
    html = render_template("link_page.html", lang=lang, title=words.title,
                           message=words.message if message is None else message,
                           action=action, button=words.button)
    return Response(html, status=status, mimetype="text/html")


def link_result(action: Callable[[], Response | dict[str, Any]], done: str) -> Response | dict[str, Any]:
    """Run a link's action: a browser gets the page ``done`` (or the action's own response, a
    download), a JSON client the action's data or the error."""
    wants_json = request.is_json or request.accept_mimetypes.best == "application/json"
    try:
        result = action()
    except ServiceError as exc:
        if wants_json:
            raise
        message = INVALID_BY_STATUS.get(page_language(), {}).get(exc.status, exc.message)
        return page("invalid", status=exc.status, message=message)
    if isinstance(result, Response):
        return result
    return result if wants_json else page(done)
