"""The start and end of every bench run: the machine line, the results file, the temporary folder."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.servers import REPO_ROOT


def machine_info() -> dict[str, Any]:
    """nproc, Python, platform, load average and the repository commit, for context."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": commit or None,
    }


def start() -> dict[str, Any]:
    """Print the machine line (and a warning when other work already loads the CPUs)."""
    machine = machine_info()
    print(f"machine: nproc {machine['nproc']}, Python {machine['python']}, "
          f"{machine['platform']}, commit {machine['commit']}")
    load = machine["loadavg_at_start"][0]
    if load > 0.5 * (machine["nproc"] or 1):
        print(f"warning: load average {load} at start on {machine['nproc']} CPUs; other work "
              "competes with the bench, so figures (less so ratios) are noisy")
    return machine


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
