"""Set when the scheduler process is asked to stop (SIGTERM): long jobs finish the batch in
hand and return, so that nothing is left half done."""
from __future__ import annotations

import threading

stopping = threading.Event()
