"""The domain core of the privacy service: models, services, crypto, ledger, policy.

Nothing in this package imports Flask request objects or anything from ``api``.
"""
