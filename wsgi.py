"""WSGI entry point: ``gunicorn wsgi:app``."""
import gc

from api import create_app

app = create_app()

# What the start built (Flask, SQLAlchemy's tables and statements, the schemas, the policy:
# about 135,000 tracked objects) lives as long as the worker. Frozen, after one collection
# so that no start-up garbage is kept for good, it is left out of later collections: a full
# one walks only what requests made since, instead of taking 35-60 ms every few thousand
# requests with the requests queued behind it waiting. (A freeze in gunicorn.conf.py,
# applied to the baseline app as well, was backed out in 04f9d93 on instruction counts
# alone, where it saves 0.5 %; what it changes is the sign-up's p99.)
gc.collect()
gc.freeze()
