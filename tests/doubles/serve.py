"""`agent-slo serve` as a child process on a free loopback port, for tests that need the real thing.

    with serving(spec_file, "--token", "t", log=tmp / "server.log") as url:
        requests.get(f"{url}/healthz")

The server's output goes to a file (a pipe nobody reads fills up, stalls the server and is never
closed); the server is stopped, and waited for, whatever the test does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(spec: Path, *args: str, log: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The base URL of a ready exporter serving `spec` with the extra `serve` arguments `args`."""
    port = free_port()
    argv = [sys.executable, "-m", "agentslo.cli", "serve", str(spec), "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, **(env or {})}
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    if requests.get(f"{url}/readyz", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None, f"the exporter exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"the exporter was not ready: {log.read_text()[-2000:]}"
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
