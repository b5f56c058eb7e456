"""What services need from their surroundings, built once per application."""
from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from privacy.crypto.keys import Crypto
from privacy.mail.mailer import Mailer
from privacy.policy.file import Policy
from privacy.storage.database import Database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Packager(Protocol):
    """Writes and serves access packages (``exports.store.PackageStore``)."""

    def build(self, package_id: str, key: bytes, kind: str, language: str, request: dict[str, Any],
              data: dict[str, Any], now: dt.datetime) -> tuple[str, int]: ...

    def open(self, file_name: str, key: bytes) -> Iterator[bytes]: ...

    def delete(self, file_name: str) -> None: ...


@dataclass
class PrivacyContext:
    """The database, keys, policy, mailer and clock of one application, handed to services
    by the factories that build them (``api.services``, the scheduler's jobs, tests)."""

    database: Database
    crypto: Crypto
    policy: Policy
    mailer: Mailer
    public_url: str
    double_opt_in_days: int = 14
    clock: Callable[[], dt.datetime] = utcnow
    packages: Packager | None = None  # where access packages are written (exports.store)


@functools.lru_cache(maxsize=256)
def as_json_time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
