"""The whole loop on loopback: exporter (`agent-slo serve`), Prometheus with the generated rules, and
Alertmanager with the generated routing, each a real process on a free port in one work directory.

`agent-slo demo` and the end-to-end tests both run it:

    with Stack([spec_path], workdir, webhook_url=sink.url) as stack:
        stack.start()
        ...  # post events to stack.exporter_url; query stack.prometheus_url; kill_exporter(); ...

The exporter runs as a child process (so `kill_exporter()` is a real SIGKILL) with its counters in
`workdir/exporter.db`, and comes back on the same port with `start_exporter()`. Rules are generated
with the stack's evaluation interval, so short test windows evaluate promptly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agentslo import rules
from agentslo.bundle import configs
from agentslo.demo.servers import Alertmanager, Prometheus, Server, find_binary, free_port, http_get
from agentslo.spec import Spec, load_specs

EXPORTER_READY_TIMEOUT_S: Final = 30.0
RESEND_DELAY: Final = "5s"


@dataclass
class Stack:
    spec_paths: Sequence[Path]
    workdir: Path
    webhook_url: str = configs.PLACEHOLDER_WEBHOOK_BASE
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    group_wait: str = "1s"
    group_interval: str = "2s"
    exporter_token: str | None = None
    exporter_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    prometheus_data_dir: Path | None = None  # e.g. holding backfilled blocks; default workdir/prometheus/data
    specs: list[Spec] = field(init=False)
    exporter: subprocess.Popen[bytes] | None = field(default=None, init=False)
    prometheus: Server | None = field(default=None, init=False)
    alertmanager: Server | None = field(default=None, init=False)
    skipped: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.specs = load_specs(list(self.spec_paths))

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.exporter_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str | None:
        return self.alertmanager.url if self.alertmanager else None

    # --- the exporter ---

    def start_exporter(self) -> None:
        """Start (or restart) `agent-slo serve` on the stack's port with durable counters."""
        argv = [
            sys.executable,
            "-m",
            "agentslo.cli",
            "serve",
            *map(str, self.spec_paths),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.exporter_port),
            "--db",
            str(self.workdir / "exporter.db"),
            "--prometheus-url",
            self.prometheus_url,
        ]
        env = dict(os.environ)
        if self.exporter_token:
            env["AGENT_SLO_TOKEN"] = self.exporter_token
        log = (self.workdir / "exporter.log").open("ab")
        self.exporter = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + EXPORTER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.exporter.poll() is not None:
                raise RuntimeError(
                    f"the exporter exited with {self.exporter.returncode}:\n{self._exporter_log()}"
                )
            try:
                if http_get(f"{self.exporter_url}/readyz", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the exporter was not ready within {EXPORTER_READY_TIMEOUT_S:.0f}s:\n{self._exporter_log()}"
        )

    def kill_exporter(self) -> None:
        """SIGKILL the exporter: no shutdown hooks, no flush; what it acknowledged must survive."""
        if self.exporter is not None and self.exporter.poll() is None:
            self.exporter.send_signal(signal.SIGKILL)
            self.exporter.wait(10)

    def _exporter_log(self) -> str:
        path = self.workdir / "exporter.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    # --- Prometheus and Alertmanager ---

    def rule_files(self) -> dict[str, str]:
        """The generated rules, evaluated at the stack's interval, by path under Prometheus' directory."""
        files = rules.generate_files(self.specs, eval_interval=self.evaluation_interval)
        return {f"rules/{rel}": content for rel, content in files.items()}

    def start_alertmanager(self) -> None:
        config = configs.alertmanager_config(
            self.specs,
            webhook_base_url=self.webhook_url,
            group_wait=self.group_wait,
            group_interval=self.group_interval,
        )
        self.alertmanager = Alertmanager.start(self.workdir / "alertmanager", config)

    def start_prometheus(self, extra_args: Sequence[str] = ()) -> None:
        """Prometheus with the generated rules. Firing alerts are resent every few seconds (default 1m):
        an alert that fires at the first evaluation, before Alertmanager is discovered, is dropped once
        and would otherwise wait a minute for its next chance."""
        config: dict[str, Any] = configs.prometheus_config(
            self.specs,
            rule_files=["rules/*.yaml"],
            exporter_targets=[f"127.0.0.1:{self.exporter_port}"],
            alertmanager_targets=[self.alertmanager.url.removeprefix("http://")] if self.alertmanager else [],
            scrape_interval=self.scrape_interval,
            evaluation_interval=self.evaluation_interval,
        )
        self.prometheus = Prometheus.start(
            self.workdir / "prometheus",
            config,
            rule_files=self.rule_files(),
            retention=configs.retention(self.specs),
            port=self.prometheus_port,
            extra_args=[f"--rules.alert.resend-delay={RESEND_DELAY}", *extra_args],
            data_dir=self.prometheus_data_dir,
        )

    def stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()

    def start(self, *, prometheus: bool = True, alertmanager: bool = True) -> None:
        """Start what is installed: Alertmanager, then the exporter, then Prometheus. A missing
        binary is recorded in `skipped` (and the rest still runs)."""
        if alertmanager:
            if find_binary(*("prometheus-alertmanager", "alertmanager")):
                self.start_alertmanager()
            else:
                self.skipped.append("Alertmanager (apt-get install prometheus-alertmanager)")
        self.start_exporter()
        if prometheus:
            if find_binary("prometheus"):
                self.start_prometheus()
            else:
                self.skipped.append("Prometheus (apt-get install prometheus)")

    def stop(self) -> None:
        """Stop everything this stack started (exporter gently first, so it flushes)."""
        if self.exporter is not None and self.exporter.poll() is None:
            self.exporter.terminate()
            try:
                self.exporter.wait(10)
            except subprocess.TimeoutExpired:
                self.kill_exporter()
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
