"""HTTP for connectors: one pooled ``requests`` session per connector, and one place that
turns an answer into success or a :class:`ConnectorError` that says whether to retry.

The rules (docs/api.md, the webhook protocol; the same for every vendor): 429 waits for
its ``Retry-After``; 408, 5xx, timeouts and refused connections are retried; any other
4xx fails the task at once with the reason.
"""
from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Collection, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from privacy.connectors.base import ConnectorError, excerpt

USER_AGENT = "privacy-service/0.1 (+connectors)"
MAX_RETRY_AFTER_S = 24 * 3600.0


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Http:
    """A connector's HTTP client: a pooled session sized for ``pool`` calls at once."""

    def __init__(self, system: str, timeout_s: float, pool: int = 4,
                 headers: Mapping[str, str] | None = None) -> None:
        self.system = system
        self.timeout_s = timeout_s
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, **(headers or {})})

    def call(self, method: str, url: str, *, ok: Collection[int] = (), known: tuple[str, ...] = (),
             **kwargs: Any) -> requests.Response:
        """Send one request and return the answer when it is 2xx or a status in ``ok``
        (a connector's "not found", say); raise :class:`ConnectorError` otherwise.
        ``known`` are the person's values, masked in any excerpt."""
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            answer = self.session.request(method, url, **kwargs)
        except requests.Timeout:
            raise ConnectorError(f"{self.system} did not answer within {self.timeout_s:g} s",
                                 retryable=True) from None
        except requests.ConnectionError:
            raise ConnectorError(f"could not connect to {self.system}", retryable=True) from None
        except requests.RequestException as exc:
            raise ConnectorError(f"request to {self.system} failed ({type(exc).__name__})",
                                 retryable=False) from None
        if answer.status_code < 300 or answer.status_code in ok:
            return answer
        raise answer_error(self.system, answer, known)

    def close(self) -> None:
        self.session.close()


def answer_error(system: str, answer: requests.Response, known: tuple[str, ...] = ()) -> ConnectorError:
    """The :class:`ConnectorError` for an unsuccessful answer, by the common rules."""
    status = answer.status_code
    body = excerpt(answer.content, known=known)
    if status == 429:
        return ConnectorError(f"{system} is rate limiting (429)", retryable=True, http_status=status,
                              retry_after=parse_retry_after(answer.headers.get("Retry-After")), excerpt=body)
    if status == 408 or status >= 500:
        return ConnectorError(f"{system} answered {status}", retryable=True, http_status=status, excerpt=body)
    return ConnectorError(f"{system} refused the request ({status}): {body[:120]}".rstrip(": "), retryable=False,
                          http_status=status, excerpt=body)
