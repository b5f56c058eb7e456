"""Pages and answers of the links mailed to customers (confirm, withdraw, verify, download).

A mailed link's GET shows a page with one button, because mail scanners prefetch links;
only the button's POST acts. A browser gets a page back, a JSON client the JSON answer
(which the route's response schema then writes).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, render_template, request

from privacy.errors import ServiceError


def page(title: str, message: str, status: int = 200, action: str | None = None, button: str = "") -> Response:
    html = render_template("link_page.html", title=title, message=message, action=action, button=button)
    return Response(html, status=status, mimetype="text/html")


def link_result(action: Callable[[], Response | dict[str, Any]], title: str, message: str
                ) -> Response | dict[str, Any]:
    """Run a link's action: a browser gets a page (or the action's own response, a download),
    a JSON client the action's data or the error."""
    wants_json = request.is_json or request.accept_mimetypes.best == "application/json"
    try:
        result = action()
    except ServiceError as exc:
        if wants_json:
            raise
        return page("Link not valid", exc.message, status=exc.status)
    if isinstance(result, Response):
        return result
    return result if wants_json else page(title, message)
