"""Stoplight Prism mock servers made from the vendors' own API descriptions (specs/).

Prism, run with ``--errors``, refuses any request the description does not allow and says
why in the ``sl-violations`` header. :class:`Recorder` keeps every answer's method, path,
status and violations, so a test asserts both what was sent and that it was valid.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(__file__).resolve().parent / "specs"
PRISM_PACKAGE = "@stoplight/prism-cli@5"


def prism_bin() -> str:
    """``$PRISM_BIN``, else ``<repo>/.prism``'s copy, installed there with npm when absent."""
    if os.environ.get("PRISM_BIN"):
        return os.environ["PRISM_BIN"]
    local = REPO / ".prism" / "node_modules" / ".bin" / "prism"
    if not local.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("Prism is not installed and npm is not on PATH")
        subprocess.run([npm, "install", "--silent", "--prefix", str(REPO / ".prism"), PRISM_PACKAGE],
                       check=True, timeout=600)
    return str(local)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrismServer:
    """One ``prism mock`` process for one description, on a free local port."""

    def __init__(self, spec: Path, log_dir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"prism-{spec.stem}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180.0) -> str:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [prism_bin(), "mock", str(self.spec), "-h", "127.0.0.1", "-p", str(self.port), "--errors"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prism exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.url
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prism did not listen on {self.port} within {timeout_s:g} s: "
                           f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int
    violations: str | None
    headers: dict[str, str]
    body: bytes | None


@dataclass
class Recorder:
    """Every answer a session received (a ``requests`` response hook)."""
    seen: list[Seen] = field(default_factory=list)

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        body = request.body.encode() if isinstance(request.body, str) else request.body
        self.seen.append(Seen(str(request.method), urlsplit(str(request.url)).path, response.status_code,
                              response.headers.get("sl-violations"), dict(request.headers), body))

    def shapes(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]

    def violations(self) -> list[str]:
        return [f"{s.method} {s.path}: {s.violations}" for s in self.seen if s.violations]


def record(session: requests.Session) -> Recorder:
    recorder = Recorder()
    session.hooks["response"].append(recorder)
    return recorder


class _PreferAdapter(HTTPAdapter):
    def __init__(self, prefer: str) -> None:
        super().__init__()
        self.prefer = prefer

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers["Prefer"] = self.prefer


def prefer(session: requests.Session, base_url: str, value: str) -> None:
    """Send ``Prefer: value`` (``code=404``, ``example=no-match``) on every request to one
    mock server, so a test picks Prism's answer there and nowhere else."""
    session.mount(base_url.rstrip("/") + "/", _PreferAdapter(value))
