"""A TCP proxy that delays every chunk it forwards: simulated network between two processes.

``python -m bench.netdelay --target HOST:PORT --delay-ms 0.5`` listens on 127.0.0.1 (a free
port unless ``--listen`` gives one), prints ``listening on PORT`` and forwards every
connection to the target. Each chunk read in either direction is released to the other side
``--delay-ms`` after it was read: each direction of each connection has a reader that stamps
chunks with their release time and queues them, and a writer that sleeps until a chunk's time
and sends it, so chunks keep their order and the delay does not stall reading (throughput is
that of a link with that latency, not one chunk per delay). A request and its answer thus
cost one extra round trip of twice the delay.

Threads rather than asyncio: asyncio's selector waits in whole milliseconds (epoll), which
turns a 0.5 ms sleep into about 1.1 ms; ``time.sleep`` overshoots by under 0.1 ms.

:class:`DelayProxy` runs it in its own process for the duration of a ``with`` block.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from bench.servers import REPO_ROOT, ServerError

CHUNK = 65536


def _reader(src: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes] | None], delay_s: float) -> None:
    """Read ``src`` until EOF, queueing each chunk with its release time; ``None`` at the end."""
    try:
        while data := src.recv(CHUNK):
            chunks.put((time.monotonic() + delay_s, data))
    except OSError:
        pass
    finally:
        chunks.put(None)


def _writer(dst: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes] | None]) -> None:
    """Send each queued chunk to ``dst`` at its release time; half-close ``dst`` at the end."""
    try:
        while (item := chunks.get()) is not None:
            release, data = item
            wait = release - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _connection(client: socket.socket, target: tuple[str, int], delay_s: float) -> None:
    """Forward one client connection to ``target`` both ways, then close both sockets."""
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    threads = []
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for src, dst in ((client, upstream), (upstream, client)):
        chunks: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        threads += [threading.Thread(target=_reader, args=(src, chunks, delay_s), daemon=True),
                    threading.Thread(target=_writer, args=(dst, chunks), daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    upstream.close()


def serve(listen_port: int, target: tuple[str, int], delay_s: float) -> None:
    """Accept connections on 127.0.0.1:``listen_port`` forever, each in threads of its own."""
    sys.setswitchinterval(0.0001)  # a woken writer must not wait 5 ms for the GIL
    with socket.create_server(("127.0.0.1", listen_port), backlog=256) as server:
        print(f"listening on {server.getsockname()[1]}", flush=True)
        while True:
            client, _ = server.accept()
            threading.Thread(target=_connection, args=(client, target, delay_s), daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.netdelay", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="delay of each chunk, each direction")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    try:
        serve(args.listen, (host, int(port)), args.delay_ms / 1e3)
    except KeyboardInterrupt:
        return 0
    return 0


class DelayProxy:
    """``python -m bench.netdelay`` in its own process while the ``with`` block runs."""

    def __init__(self, target: tuple[str, int], delay_ms: float) -> None:
        self.target = target
        self.delay_ms = delay_ms
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.netdelay", "--target", f"{self.target[0]}:{self.target[1]}",
             "--delay-ms", str(self.delay_ms)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise ServerError(f"bench.netdelay did not start (printed {line!r})")
        self.port = int(line.split()[-1])
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            if self.proc.stdout:
                self.proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
