"""The end of every bench run: the results file, and the temporary folder kept or removed."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def finish(report: dict[str, Any], machine: dict[str, Any], output: Path, tmp: Path, keep: bool,
           status: int) -> None:
    """Write ``report`` to ``output`` (with the load average at the end) and tidy ``tmp``."""
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {output}")
    if keep or status:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
