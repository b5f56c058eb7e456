"""Start and stop the processes under test: the service and the baseline, both under gunicorn.

Every server is a :class:`GunicornServer` used as a context manager: it starts gunicorn
in its own process group on ``127.0.0.1``, waits for ``GET /healthz`` to answer 200,
and on exit (also on an error or Ctrl-C) terminates that process group, killing it if
it does not stop in time. Its log goes to a file in the run's temporary folder, and the
tail of that log is printed when something goes wrong.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from privacy.crypto.keys import generate_master_key

REPO_ROOT = Path(__file__).resolve().parent.parent

WORKERS = 2
"""gunicorn workers, the same for the service and the baseline."""

GUNICORN_TIMEOUT_S = 120
"""Worker timeout, the same for both; above gunicorn's 30 s so that a slow bulk check
is measured rather than killed."""


class ServerError(RuntimeError):
    """A server did not start, or a setup command failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or ``""`` if it does not exist."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def service_env(instance_dir: Path) -> dict[str, str]:
    """The environment for the service and its CLI: a fresh instance folder and master key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_")}
    env["PRIVACY_INSTANCE_DIR"] = str(instance_dir)
    env["PRIVACY_MASTER_KEY"] = generate_master_key()
    return env


def privacy_entry_point() -> tuple[str, str]:
    """(module, function) of the ``privacy`` console script, as ``setup.cfg`` declares it."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    scripts = config.get("options.entry_points", "console_scripts", fallback="")
    for line in scripts.splitlines():
        name, _, target = line.partition("=")
        if name.strip() == "privacy":
            module, _, function = target.strip().partition(":")
            return module, function
    raise ServerError("setup.cfg declares no `privacy` console script")


def privacy_cli() -> list[str]:
    """The ``privacy`` console script, run with this interpreter from the repository root.

    Not through the installed script, so that the commands run the same code as the
    gunicorn workers (which import from the working directory), even when the installed
    package points at another checkout.
    """
    module, function = privacy_entry_point()
    code = f"import sys; from {module} import {function} as main; "
    code += "sys.argv[0] = 'privacy'; sys.exit(main())"
    return [sys.executable, "-c", code]


def run_cli(args: Sequence[str], env: Mapping[str, str], timeout_s: float = 120) -> str:
    """Run ``privacy ARGS`` from the repository root; its stdout, or :class:`ServerError`."""
    cmd = [*privacy_cli(), *args]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerError(
            f"`privacy {' '.join(args)}` exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


def prepare_service(env: Mapping[str, str]) -> str:
    """``privacy db upgrade``, then a ``consent:write,consent:read`` API key; returns the key."""
    run_cli(["db", "upgrade"], env)
    out = run_cli(
        ["keys", "create", "--name", "bench", "--scopes", "consent:write,consent:read"],
        env,
    )
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        raise ServerError("`privacy keys create` printed no key")
    return lines[-1]


class GunicornServer:
    """A gunicorn master with ``workers`` (default :data:`WORKERS`) workers serving ``app_spec`` on 127.0.0.1."""

    def __init__(
        self,
        name: str,
        app_spec: str,
        env: Mapping[str, str],
        log_path: Path,
        port: int | None = None,
        health_path: str = "/healthz",
        startup_timeout_s: float = 60,
        workers: int = WORKERS,
    ) -> None:
        self.name = name
        self.workers = workers
        self.app_spec = app_spec
        self.env = dict(env)
        self.log_path = log_path
        self.port = port or free_port()
        self.health_path = health_path
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The gunicorn command line (the same settings for every server)."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--timeout",
            str(GUNICORN_TIMEOUT_S),
            self.app_spec,
        ]

    def start(self) -> None:
        """Start gunicorn in a new process group and wait until it is healthy."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Poll the health route until it answers 200; :class:`ServerError` on timeout or exit."""
        url = self.base_url + self.health_path
        deadline = time.monotonic() + self.startup_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"{self.name}: gunicorn exited with {self.proc.returncode}\n{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ServerError(
            f"{self.name}: {url} not healthy after {self.startup_timeout_s:.0f} s ({last})\n{tail(self.log_path)}"
        )

    def alive(self) -> bool:
        """Whether the gunicorn master is still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM the server's process group, then SIGKILL it after ``grace_s`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # the group we created: master and its workers
            except ProcessLookupError:
                break
            try:
                proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # workers a killed master left behind

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
