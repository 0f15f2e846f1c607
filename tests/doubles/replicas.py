"""Exporter replicas behind the shipped nginx config, as real processes on loopback.

    with ExporterReplicas(spec, workdir, 3) as replicas, nginx_router(replicas.addresses, workdir) as router:
        requests.post(f"{router.url}/v1/events", json=[...], headers={"Idempotency-Key": "k1"})
        replicas[1].kill()      # SIGKILL: no clean shutdown, whatever was in flight is cut off
        replicas[1].start()     # the same port and SQLite file, as a restarted pod

Each replica is `agent-slo serve SPEC --db <its own file>` on a port fixed for its life, so a
restart comes back at the same address (a StatefulSet pod keeps its name). nginx runs unprivileged
in the foreground with `deploy/nginx/agent-slo.conf`, its three server names replaced by the
replicas' loopback addresses: the file that ships is the file under test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentslo.bundle import nginx
from agentslo.demo.servers import Server, free_port
from tests.doubles.serve import READY_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "deploy" / "nginx" / "agent-slo.conf"


class Replica:
    """One `agent-slo serve` child with its own port and SQLite file; `server` is its current life."""

    def __init__(self, spec: Path, directory: Path, index: int, args: Sequence[str]) -> None:
        self.spec, self.index, self.args = spec, index, list(args)
        self.directory = directory
        self.port = free_port()
        self.db = directory / f"replica-{index}.db"
        self.log = directory / f"replica-{index}.log"
        self.server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.proc if self.server else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "agentslo.cli", "serve", str(self.spec), "--port", str(self.port)]
        out = self.log.open("ab")  # appended across restarts: one log per replica
        proc = subprocess.Popen(
            [*argv, "--db", str(self.db), *self.args], stdout=subprocess.DEVNULL, stderr=out
        )
        self.server = Server(
            f"exporter-{self.index}", self.port, proc, self.directory, self.log, "/readyz", out
        )
        self.server.wait_ready(READY_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL and reap: a crash, not a shutdown."""
        if self.server is not None:
            self.server.proc.kill()
            self.server.stop()  # reaps it and closes the log

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class ExporterReplicas:
    """`n` replicas of the exporter serving one spec; all started on entry, all stopped on exit."""

    def __init__(self, spec: Path, directory: Path, n: int, *args: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.replicas = [Replica(spec, directory, i, args) for i in range(n)]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{r.port}" for r in self.replicas]

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    def __enter__(self) -> ExporterReplicas:
        try:
            for replica in self.replicas:
                replica.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.stop()


def router_snippet(addresses: Sequence[str], listen: str) -> str:
    """deploy/nginx/agent-slo.conf with its servers and listen address replaced, nothing else."""
    text = SHIPPED_CONF.read_text(encoding="utf-8")
    if len(addresses) != len(nginx.SHIPPED_SERVERS):
        raise ValueError(
            f"the shipped config names {len(nginx.SHIPPED_SERVERS)} replicas, not {len(addresses)}"
        )
    for name, address in zip(nginx.SHIPPED_SERVERS, addresses, strict=True):
        text = re.sub(rf"\bserver {re.escape(name)} ", f"server {address} ", text)
    return text.replace("    listen 9120;", f"    listen {listen};")


@contextmanager
def nginx_router(
    addresses: Sequence[str], directory: Path, edit: Callable[[str], str] | None = None
) -> Iterator[Server]:
    """nginx in the foreground with the shipped config routing to `addresses` (changed by `edit`, for
    a test of what the config rules out); ready once /healthz answers through it (a read, so any
    live replica will do)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx)")
    prefix = directory / ("nginx" if edit is None else "nginx-edited")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    snippet = prefix / "agent-slo.conf"
    text = router_snippet(addresses, f"127.0.0.1:{port}")
    snippet.write_text(edit(text) if edit else text, encoding="utf-8")
    conf = prefix / "nginx.conf"
    # as root (a container), the workers keep root's identity so they can write under the private tmp dir
    user = "root" if os.geteuid() == 0 else None
    conf.write_text(nginx.main_conf(str(snippet), prefix=str(prefix), user=user), encoding="utf-8")
    log_path = prefix / "stderr.log"
    out: Any = log_path.open("wb")
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = Server("nginx", port, proc, prefix, log_path, ready_path="/healthz", _log=out)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
