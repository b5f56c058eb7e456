"""Scheduled policies: consent expiry, clean-ups, and (next) retention sweeps."""
