"""Helpers shared by the connectors of other systems: the base URL
setting, reading a JSON answer, and rectification's field mapping from our field names
(``first_name``) to a vendor's properties (``firstname``): a type's defaults overridden by
the policy entry's ``fields:`` setting."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from privacy.connectors.base import ConfigError, ConnectorError, Skip


def field_map(name: str, defaults: Mapping[str, str], override: object,
              valid: Callable[[str], object] | None = None) -> dict[str, str]:
    """The defaults with ``override`` (the ``fields`` setting, ``{our name: the system's
    name}``, whose keys the policy file checks against its fields catalogue) applied; an
    empty value in the override unmaps a field. ``valid`` checks each name the system is
    given (an SQL or SOQL identifier, say)."""
    if override is None:
        return dict(defaults)
    if not isinstance(override, Mapping):
        raise ConfigError(f"connectors[{name}].fields: a mapping of our field names to the system's")
    merged = dict(defaults)
    for ours, theirs in override.items():
        if theirs in (None, ""):
            merged.pop(ours, None)
        elif isinstance(theirs, str) and (valid is None or valid(theirs)):
            merged[ours] = theirs
        else:
            raise ConfigError(f"connectors[{name}].fields.{ours}: {theirs!r} is not a name the system takes")
    return merged


def mapped_changes(system: str, changes: Mapping[str, str], mapping: Mapping[str, str]) -> dict[str, str]:
    """``changes`` renamed to vendor properties; fields without a mapping are left out. Raises
    :class:`Skip` when nothing is left, so the task never claims a change nobody made."""
    out = {mapping[ours]: value for ours, value in changes.items() if ours in mapping}
    if not out:
        raise Skip(f"none of the changed fields is mapped to a {system} property")
    return out


def base_url(name: str, key: str, value: object) -> str:
    """A URL setting's value without its trailing slash, or :class:`ConfigError`."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"connectors[{name}].{key}: an http:// or https:// address")
    return value.rstrip("/")


def json_object(system: str, answer: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or a non-retryable error (never quoting the body)."""
    try:
        parsed = answer.json()
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ConnectorError(f"{system} answered something that is not a JSON object", retryable=False,
                             http_status=answer.status_code)
    return parsed
