"""`agent-slo serve`: arguments, token from the environment, and no listening beyond loopback without one."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentslo.exporter import command

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["examples/cx-support.slo.yaml", *argv])


def test_defaults_are_loopback_and_9120() -> None:
    args = parse()
    assert (args.host, args.port, args.db) == ("127.0.0.1", 9120, None)


def test_refuses_to_listen_beyond_loopback_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(command.TOKEN_ENV, raising=False)
    assert command.run(parse("--host", "0.0.0.0")) == 2
    assert "without a token" in capsys.readouterr().err


def test_token_comes_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(command.TOKEN_ENV, "from-env")
    assert command.config_from(parse()).token == "from-env"
    assert command.config_from(parse("--token", "flag")).token == "flag"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert command._is_loopback(host) is loopback


def test_allowed_origins_and_the_idempotency_bound_come_from_flags() -> None:
    config = command.config_from(
        parse(
            "--allow-origin",
            "https://a.example",
            "--allow-origin",
            "http://b:8080",
            "--max-idempotency-keys",
            "10",
        )
    )
    assert config.allowed_origins == ("https://a.example", "http://b:8080")
    assert config.max_idempotency_keys == 10
    assert command.config_from(parse()).allowed_origins == ()


def test_serve_runs_the_app_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    given: dict[str, object] = {}
    monkeypatch.setattr(command.web, "run_app", lambda app, **options: given.update(options))
    assert command.run(parse("--port", "0")) == 0
    loop = given["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert type(loop).__module__.startswith("uvloop")
    loop.close()


def test_serve_on_uvloop_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = ROOT / "examples" / "cx-support.slo.yaml"
    cmd = [sys.executable, "-m", "agentslo.cli", "serve", str(spec), "--port", str(port)]
    cmd += ["--db", str(tmp_path / "c.db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the exporter did not become ready"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_event_loop_is_asyncio_s_own_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = command.event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: importing it fails
    loop = command.event_loop()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
