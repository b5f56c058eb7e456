"""A small HTTP server that stands in for a connected system in tests.

Routes are registered as ``(method, path regex) -> handler(request) -> (status, body,
headers)``; every request is kept (method, path, query, headers, body) so a test can
check exactly what the service sent. ``faults`` queues answers that override the routes
(a 500, a 429 with ``Retry-After``, a slow answer, garbage), one per request, to drive
retry tests. ``refuse()`` closes the port so connections are refused.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

Answer = tuple[int, Any, dict[str, str]]
Handler = Callable[["Seen"], Answer]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str] | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeSystem:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def route(self, method: str, path: str, handler: Handler | Answer) -> None:
        answer = handler if callable(handler) else (lambda _seen, a=handler: a)
        self.routes.append((method.upper(), re.compile(path + r"\Z"), answer))

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def requests_to(self, method: str, path: str) -> list[Seen]:
        pattern = re.compile(path + r"\Z")
        return [s for s in self.seen if s.method == method.upper() and pattern.match(s.path)]

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        seen = Seen(request.method, request.path, dict(request.args), dict(request.headers), request.get_data())
        with self.lock:
            self.seen.append(seen)
            fault = self.faults.pop(0) if self.faults else None
        delay = fault.delay_s if fault else self.delay_s
        if delay:
            time.sleep(delay)
        if fault is not None:
            return _response(fault.status, fault.body, fault.headers)(environ, start_response)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                seen.match = match
                return _response(*handler(seen))(environ, start_response)
        return _response(404, {"error": "no such route in the fake"}, {})(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    refuse = close


def _response(status: int, body: Any, headers: dict[str, str]) -> Response:
    if body is None:
        return Response(status=status, headers=headers)
    if isinstance(body, (bytes, str)):
        return Response(body, status=status, headers=headers)
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")
