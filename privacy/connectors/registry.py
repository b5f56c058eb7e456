"""The explicit registry: each policy ``type`` and the class that implements it."""
from __future__ import annotations

import os
from collections.abc import Mapping

from privacy.connectors.base import ConfigError, Connector
from privacy.connectors.hubspot import HubSpotConnector
from privacy.connectors.klaviyo import KlaviyoConnector
from privacy.connectors.mailchimp import MailchimpConnector
from privacy.connectors.manual import ManualConnector
from privacy.connectors.salesforce import SalesforceConnector
from privacy.connectors.sql import SqlConnector
from privacy.connectors.voyado import VoyadoConnector
from privacy.connectors.webhook import WebhookConnector
from privacy.policy.file import ConnectorDef, Policy

CONNECTOR_CLASSES: dict[str, type[Connector]] = {
    WebhookConnector.type: WebhookConnector,
    ManualConnector.type: ManualConnector,
    HubSpotConnector.type: HubSpotConnector,
    MailchimpConnector.type: MailchimpConnector,
    KlaviyoConnector.type: KlaviyoConnector,
    SalesforceConnector.type: SalesforceConnector,
    VoyadoConnector.type: VoyadoConnector,
    SqlConnector.type: SqlConnector,
}


def build(definition: ConnectorDef, environ: Mapping[str, str] | None = None) -> Connector:
    """The connector for one policy entry (settings checked; secrets are read when used)."""
    cls = CONNECTOR_CLASSES.get(definition.type)
    if cls is None:
        raise ConfigError(f"connectors[{definition.name}].type: no connector implements {definition.type!r}")
    return cls(definition, os.environ if environ is None else environ)


def build_all(policy: Policy, environ: Mapping[str, str] | None = None) -> dict[str, Connector]:
    """Every connector of the policy file, by name."""
    return {d.name: build(d, environ) for d in policy.connectors}
