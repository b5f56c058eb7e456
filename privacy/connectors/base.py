"""The one interface every connected system implements, and what it answers.

A connector is built once from its policy entry (settings passed to the constructor,
secrets read from the environment variables the entry names) and then asked to carry out
one :class:`TaskCall` at a time, from several threads at once. It answers a
:class:`Result` saying what the system *really* did (``outcome``), or raises
:class:`ConnectorError` saying whether trying again could help. It never logs personal
data, and nothing it puts in ``excerpt`` or an error's reason may hold any.
"""
from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from privacy.policy.file import ConnectorDef

# What a succeeded task reports (docs/api.md): the system acted, held nothing, queued the
# work without telling when it ends, or will complete a deletion later.
OUTCOMES = ("done", "not_found", "accepted", "soft_deleted")
EXCERPT_CHARS = 300
_EMAIL = re.compile(r"[^\s\"'<>@,;:()\[\]{}]+@[^\s\"'<>@,;:()\[\]{}]+")


@dataclass(frozen=True)
class TaskCall:
    """One operation for one person at one system.

    ``id`` is the task's id: stable across retries, sent to the system as its idempotency
    key. ``purposes`` maps each purpose the change concerns to the person's new status
    there (``{"marketing_email": "withdrawn"}``); ``changes`` holds a rectification's
    corrected values.
    """
    id: str
    operation: str  # access | erasure | rectification | restriction | consent
    email: str
    subject_id: str | None = None
    request_id: str | None = None
    changes: Mapping[str, str] = field(default_factory=dict)
    purposes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """A succeeded task: ``outcome`` is one of :data:`OUTCOMES`; ``data`` is an access
    answer (it goes into the person's access package under the system's name)."""
    outcome: str = "done"
    data: dict[str, Any] | None = None
    http_status: int | None = None
    excerpt: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")


class ConnectorError(Exception):
    """A failed attempt. ``retryable`` says whether the same call could succeed later (a
    timeout, a 5xx, a 429); ``retry_after`` is the wait in seconds the system asked for.
    ``reason`` is shown to officers: it names what went wrong, never the person."""

    def __init__(self, reason: str, *, retryable: bool, http_status: int | None = None,
                 retry_after: float | None = None, excerpt: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after = retry_after
        self.excerpt = excerpt


class Skip(Exception):
    """The system cannot act for this person (it has no identity it knows, the operation is
    not one it takes): the task is ``skipped`` with this reason and never blocks others."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(ValueError):
    """A connector's policy entry cannot work; the message names the key
    (``connectors[crm].url: ...``)."""


class Connector(abc.ABC):
    """A connected system. Subclasses set :attr:`type` and :attr:`supported`, read their
    settings in ``__init__`` (raising :class:`ConfigError` naming the key) and implement
    :meth:`run` and :meth:`test_connection`."""

    type: ClassVar[str]
    supported: ClassVar[frozenset[str]]  # the operations this type can carry out

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        self.definition = definition
        self.name = definition.name
        self.environ = environ
        self.timeout_s = definition.timeout_s
        unsupported = sorted(set(definition.operations) - self.supported)
        if unsupported and set(definition.operations) != set(_ALL_OPERATIONS):
            raise ConfigError(f"connectors[{self.name}].operations: a {self.type} system cannot do "
                              f"{', '.join(unsupported)}")

    @property
    def operations(self) -> tuple[str, ...]:
        """What this system is asked to do: the policy's list, within what the type supports."""
        return tuple(op for op in self.definition.operations if op in self.supported)

    # --- settings ---------------------------------------------------------------------

    def setting(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        value = self.definition.settings.get(key, default)
        if required and value in (None, ""):
            raise ConfigError(f"connectors[{self.name}].{key}: required for a {self.type} system")
        return value

    def secret(self, key: str) -> str:
        """The value of the environment variable that setting ``key`` names. Raises a
        non-retryable error naming the variable (never its value) when it is unset."""
        variable = self.setting(key, required=True)
        value = self.environ.get(variable, "")
        if not value:
            raise ConnectorError(f"the environment variable {variable} is not set", retryable=False)
        return value

    # --- work -------------------------------------------------------------------------

    @abc.abstractmethod
    def run(self, call: TaskCall) -> Result:
        """Carry out ``call``; raise :class:`ConnectorError` or :class:`Skip`."""

    @abc.abstractmethod
    def test_connection(self) -> str:
        """Check the system answers with the configured credentials: a short description of
        what was checked, or :class:`ConnectorError` with the reason."""

    def close(self) -> None:
        """Release what the connector holds (HTTP sessions, database connections)."""
        http = getattr(self, "http", None)
        if http is not None:
            http.close()

    def opt_in(self, email: str) -> bool | None:
        """For reconciliation: does the system consider ``email`` subscribed to marketing
        (None when it does not hold the person). Types that cannot tell raise
        :class:`NotImplementedError`."""
        raise NotImplementedError


_ALL_OPERATIONS = ("access", "erasure", "rectification", "restriction", "consent")


def excerpt(text: str | bytes | None, *, known: tuple[str, ...] = ()) -> str:
    """At most :data:`EXCERPT_CHARS` of a system's answer with every e-mail address and each
    of ``known`` (the person's values) masked, for the attempt log."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text[:EXCERPT_CHARS * 4].decode("utf-8", "replace")
    for value in known:
        if value:
            text = text.replace(value, "<redacted>")
    return _EMAIL.sub("<email>", text)[:EXCERPT_CHARS]


class Waiting(Exception):
    """A person must act (a system with no API): the runner mails ``owner_email`` the task
    with a single-use link to confirm it done, and the task waits until the deadline."""

    def __init__(self, owner_email: str, instructions: str) -> None:
        super().__init__("waiting for the system's owner")
        self.owner_email = owner_email
        self.instructions = instructions
