"""``manual``: a system with no API (a paper archive, a till system). Its owner gets a mail
with the task and a single-use link to confirm it done; the request waits for that (or an
officer's ``done``), and a task nobody confirms fails at its deadline."""
from __future__ import annotations

from collections.abc import Mapping

from privacy.connectors.base import ConfigError, Connector, Result, TaskCall, Waiting
from privacy.policy.file import ConnectorDef


class ManualConnector(Connector):
    type = "manual"
    supported = frozenset({"access", "erasure", "rectification", "restriction"})

    def __init__(self, definition: ConnectorDef, environ: Mapping[str, str]) -> None:
        super().__init__(definition, environ)
        owner = self.setting("owner_email", required=True)
        if not isinstance(owner, str) or "@" not in owner:
            raise ConfigError(f"connectors[{self.name}].owner_email: an e-mail address")
        self.owner_email = owner
        self.instructions = str(self.setting("instructions", ""))

    def run(self, call: TaskCall) -> Result:
        raise Waiting(self.owner_email, self.instructions)

    def test_connection(self) -> str:
        return f"tasks are mailed to the system's owner at {self.owner_email}"
