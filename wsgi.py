"""WSGI entry point: ``gunicorn wsgi:app``."""
import gc

from api import create_app

app = create_app()

# What the start built (Flask, SQLAlchemy's tables and statements, the schemas, the policy:
# about 135,000 tracked objects) lives as long as the worker. Frozen, it is left out of
# garbage collections: a full one walks only what requests made since, instead of taking
# 35-60 ms every few thousand requests, with the requests queued behind it waiting.
gc.freeze()
