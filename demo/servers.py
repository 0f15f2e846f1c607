"""Real Prometheus and Alertmanager processes on loopback, for `agent-slo demo` and the tests.

Each server gets a free port and its own directory, is waited on until ready, and is stopped
(terminate, then kill) by `stop()` or on leaving its `with` block:

    with Alertmanager.start(workdir, am_config) as am, Prometheus.start(workdir, prom_config) as prom:
        print(prom.url, am.url)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import yaml

PROMETHEUS_BINARY: Final = "prometheus"
ALERTMANAGER_BINARIES: Final = ("prometheus-alertmanager", "alertmanager")
READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(*candidates: str) -> str | None:
    for name in candidates:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if path:
            return path
    return None


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post_json(url: str, body: Any, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    """A child process listening on `port`; `url` is its base URL."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path
    log_path: Path
    ready_path: str = "/-/ready"
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http_get(self.url + self.ready_path, timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(name: str, argv: list[str], directory: Path, port: int) -> Server:
    log_path = directory / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    server = Server(name, port, proc, directory, log_path, _log=log)
    server.wait_ready()
    return server


def write_yaml(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    return path


class Prometheus:
    """Start Prometheus with a config (data) in `directory`; rule files are written beside it."""

    @staticmethod
    def start(
        directory: Path,
        config: Mapping[str, Any],
        *,
        rule_files: Mapping[str, str] | None = None,
        retention: str = "37d",
        port: int | None = None,
        data_dir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> Server:
        binary = find_binary(PROMETHEUS_BINARY)
        if binary is None:
            raise FileNotFoundError("prometheus is not installed (Debian: apt-get install prometheus)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for rel, content in (rule_files or {}).items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_text(content, encoding="utf-8")
        config_path = write_yaml(directory / "prometheus.yml", config)
        port = port or free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir or directory / 'data'}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *extra_args,
        ]
        return _launch("prometheus", argv, directory, port)


class Alertmanager:
    """Start Alertmanager (clustering off) with a config (data) in `directory`."""

    @staticmethod
    def start(directory: Path, config: Mapping[str, Any], *, port: int | None = None) -> Server:
        binary = find_binary(*ALERTMANAGER_BINARIES)
        if binary is None:
            raise FileNotFoundError(
                "alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)"
            )
        directory = Path(directory)
        config_path = write_yaml(directory / "alertmanager.yml", config)
        port = port or free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={directory / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip port to collide with
        ]
        return _launch("alertmanager", argv, directory, port)


class WebhookSink:
    """An Alertmanager webhook receiver on loopback that keeps what it is sent, by receiver path.

    `agent-slo demo` prints alerts as they arrive through one; the tests assert on them. Alertmanager's
    webhook body is `{"receiver", "status", "alerts": [{"labels", "annotations", ...}], ...}`.
    """

    def __init__(self, port: int | None = None) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []  # (path without leading /, body)
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._cond:
                    sink.received.append((self.path.lstrip("/"), json.loads(body or b"{}")))
                    sink._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet: the sink is not a web server for people
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self, status: str | None = "firing") -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert received so far, optionally only with `status`."""
        with self._cond:
            return [
                (path, alert)
                for path, body in self.received
                for alert in body.get("alerts", [])
                if status is None or alert.get("status") == status
            ]

    def wait_for(self, predicate: Any, timeout: float) -> tuple[str, dict[str, Any]] | None:
        """The first (receiver path, alert) satisfying `predicate(path, alert)`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for path, body in self.received:
                    for alert in body.get("alerts", []):
                        if predicate(path, alert):
                            return path, alert
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
