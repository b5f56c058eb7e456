"""JSON answers of every route encoded by orjson.

A sign-up answer carries its signed receipt (about 6 KB of JSON); the standard library
takes about 30 µs to encode it, orjson about 6 µs. Anything orjson refuses (an integer
beyond 64 bits, a key that is not a string) and any call with formatting options goes to
Flask's own provider, and so do dates (HTTP dates, as before). Request bodies are still
parsed by the standard library, whose depth limit refuses absurdly nested JSON as 400.

``jsonify`` (flask-smorest writes every answer a schema dumps with it) asks ``dumps`` for
compact separators, which would send it to the standard library: ``response`` writes the
compact form with orjson instead, which is what orjson writes anyway.
"""
from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.sansio.response import Response as BaseResponse


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson for plain ``dumps``."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:
            return super().dumps(obj, **kwargs)
        try:
            # Dates go to Flask's own encoder (HTTP dates), as they did before.
            return orjson.dumps(obj, default=self.default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        except TypeError:  # orjson.JSONEncodeError: what only the standard library can write
            return super().dumps(obj)

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)  # indented, for people
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=orjson.OPT_PASSTHROUGH_DATETIME)
        except TypeError:  # orjson.JSONEncodeError
            return super().response(*args, **kwargs)
        response_class: type[Response] = self._app.response_class  # type: ignore[assignment]  # sans-IO in stubs
        return response_class(body + b"\n", mimetype=self.mimetype)


def require_json_object() -> None:
    """A body whose every field has a default must still be a JSON object (``{}`` is one):
    webargs reads no body, or one that is not JSON, as "nothing given", and the route would act
    (a reconciliation or a retention run) on a body it never read."""
    if not request.is_json:
        raise UnsupportedMediaType()
    if not request.get_data().strip():
        raise BadRequest("Failed to decode JSON object: the body is empty")
