"""gunicorn settings read from the working directory (``gunicorn wsgi:app``).

The access log, when enabled with ``--access-logfile``, records the path without its
query string: ``GET /v1/subjects?email=...`` must not write an e-mail address to disk.
"""
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
