"""gunicorn settings read from the working directory (``gunicorn wsgi:app``).

The access log, when enabled with ``--access-logfile``, records the path without its
query string: ``GET /v1/subjects?email=...`` must not write an e-mail address to disk.

Each worker freezes the objects it holds once the application is loaded (Flask,
SQLAlchemy, marshmallow and the policy: a few hundred thousand that live as long as the
worker): Python's cyclic garbage collector then stops walking them in every full
collection, which cost about 6 % of a sign-up's instructions (``python -m
bench.instructions``), and they stay out of the collector's way for good.
"""
import gc
from typing import Any

access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


def post_worker_init(worker: Any) -> None:
    """After the worker has loaded the application: collect once, then freeze what is left."""
    gc.collect()
    gc.freeze()
