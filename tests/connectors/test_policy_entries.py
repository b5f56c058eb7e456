"""The contract's example entries for salesforce, voyado and sql load from a policy file
and build through the registry."""
from __future__ import annotations

from privacy.connectors.registry import build_all
from privacy.connectors.salesforce import SalesforceConnector
from privacy.connectors.sql import SqlConnector
from privacy.connectors.voyado import VoyadoConnector
from privacy.policy.file import parse_policy

POLICY = """
fields:
  email: {category: contact, type: email, identifier: true}
purposes:
  - code: marketing_email
    name: {en: Offers by e-mail}
    legal_basis: consent
    fields: [email]
    notice: {version: "2026-11-01", text: "We send offers by e-mail."}
    retention: {period_days: 30, after: withdrawal, action: delete}
connectors:
  - name: salesforce
    type: salesforce
    base_url: https://acme.my.salesforce.com
    client_id_env: SF_CLIENT_ID
    client_secret_env: SF_CLIENT_SECRET
  - name: voyado
    type: voyado
    base_url: https://acme.voyado.com
    api_key_env: VOYADO_API_KEY
  - name: orders
    type: sql
    url_env: ORDERS_DATABASE_URL
    tables:
      - {name: customers, key: email, columns: [name, phone, address], erase: "null"}
      - {name: orders, key: customer_email, columns: [delivery_address], erase: delete}
"""


def test_the_contracts_example_entries_build_with_all_their_operations() -> None:
    policy = parse_policy(POLICY)
    built = build_all(policy, environ={})
    assert isinstance(built["salesforce"], SalesforceConnector)
    assert isinstance(built["voyado"], VoyadoConnector)
    assert isinstance(built["orders"], SqlConnector)
    assert set(built["salesforce"].operations) == {"access", "erasure", "rectification", "consent"}
    assert set(built["orders"].operations) == {"access", "erasure", "rectification"}
    assert policy.missing_secrets({}) == {"orders": ["ORDERS_DATABASE_URL"], "salesforce": [
        "SF_CLIENT_ID", "SF_CLIENT_SECRET"], "voyado": ["VOYADO_API_KEY"]}
