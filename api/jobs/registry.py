"""The jobs the web shell adds to :data:`retention.jobs.JOBS` (they live with what they
clean up, in ``api``)."""
from __future__ import annotations

import datetime as dt

from api.ratelimits import purge_expired
from retention.jobs import Job

SHELL_JOBS: dict[str, tuple[Job, dt.timedelta]] = {"purge_rate_limits": (purge_expired, dt.timedelta(hours=1))}
