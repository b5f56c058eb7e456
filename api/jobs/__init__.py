"""The scheduled jobs as officers see them (``GET /v1/jobs``)."""
