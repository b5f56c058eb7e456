"""``python -m bench.instructions``: CPU instructions per request, counted, not timed.

Throughput on a shared two-core machine drifts by 10-15 % from one run to the next, so a
change worth 3 % cannot be seen in ``python -m bench``. This counts instead: each side
runs in a child process under valgrind (``cachegrind``, no cache simulation) that calls
the WSGI application directly, with no server and no load generator, for ``--requests``
and then for ``--requests + --extra`` sign-ups; the difference, divided by ``--extra``,
is the user-space instructions one request costs, start-up excluded. The same body goes
to both sides:

- service: ``POST /v1/consents`` (3 purposes, 4 fields, a distinct e-mail per request)
  on a fresh SQLite instance, as ``python -m bench`` sends it;
- baseline: ``POST /write`` of :mod:`bench.baseline_app` (one INSERT, one COMMIT).

What it leaves out: the kernel (socket and file writes), gunicorn's own parsing and
writing (about 0.5 M instructions a request, the same on both sides), and the load
generator. So the instruction ratio is lower than the throughput ratio; it is the figure
to compare a change against, run before and after on the same commit's baseline.
Counts repeat to within about 0.1 M instructions (a full garbage collection falling in
one run and not the other is most of that). Needs valgrind (Debian: ``apt-get install
valgrind``); takes two to three minutes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import REPO_ROOT, prepare_service, service_env

WARMUP = 30
SIDES = ("service", "baseline")


def signup_body(i: int) -> bytes:
    """The sign-up ``bench/signup.lua`` sends, with a distinct e-mail."""
    return json.dumps({
        "subject": {"email": f"bench-{uuid.uuid4().hex[:8]}-{i}@example.se", "first_name": "Anna",
                    "country": "SE", "birth_date": "1990-04-01"},
        "purposes": {"loyalty_club": True, "marketing_email": True, "profiling": False},
        "notice_version": "2026-11-01", "source": {"form": "signup-web", "channel": "web"}}).encode()


def wsgi_caller(app: Any, path: str, authorization: str | None) -> Callable[[bytes], bytes]:
    """A function that POSTs a JSON body to ``app`` through WSGI and returns the answer."""

    def call(body: bytes) -> bytes:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        }
        if authorization:
            environ["HTTP_AUTHORIZATION"] = authorization
        status: list[str] = []
        answer = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        if not status or not status[0].startswith("201"):
            raise SystemExit(f"{path} answered {status[:1]}: {answer[:300]!r}")
        return answer

    return call


def child(side: str, requests: int) -> None:
    """Serve ``WARMUP`` and then ``requests`` sign-ups in this process (run under valgrind)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-instr-{side}-"))
    try:
        if side == "service":
            from privacy import apikeys

            # Under valgrind a request takes about 40 times as long, so a cache that expires
            # after some seconds (the API key's) would be looked up again 40 times as often
            # per request as under gunicorn, and that, not the code, would decide the count.
            # Counted as if it never expires.
            apikeys.KEY_CACHE_TTL_S = float("inf")
            env = service_env(folder)
            key = prepare_service(env)
            os.environ.update(env)
            from api import create_app

            call = wsgi_caller(create_app(), "/v1/consents", f"Bearer {key}")
        else:
            from bench.baseline_app import create_app as baseline_app
            from bench.baseline_app import create_schema

            create_schema(str(folder / "baseline.db"))
            call = wsgi_caller(baseline_app(str(folder / "baseline.db")), "/write", None)
        for i in range(WARMUP):
            call(signup_body(i))
        bodies = [signup_body(WARMUP + i) for i in range(requests)]
        for body in bodies:
            call(body)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def count(side: str, requests: int) -> int:
    """User-space instructions of a child serving ``requests`` sign-ups, from cachegrind."""
    with tempfile.TemporaryDirectory(prefix="cachegrind-") as folder:
        proc = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={folder}/out",
             sys.executable, "-m", "bench.instructions", "--child", side, str(requests)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the {side} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="sign-ups of the shorter run (default 30)")
    parser.add_argument("--extra", type=int, default=100, help="more sign-ups in the longer run (default 100)")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    per_request: dict[str, float] = {}
    for side in SIDES:
        short, long = count(side, args.requests), count(side, args.requests + args.extra)
        per_request[side] = (long - short) / args.extra
        print(f"  {side:9s} {per_request[side] / 1e6:7.3f} M instructions per request "
              f"({args.extra} requests counted)", flush=True)
    print(f"  ratio baseline/service instructions: {per_request['baseline'] / per_request['service']:.2f} "
          "(user space only, no server: lower than the throughput ratio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
