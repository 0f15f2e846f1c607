"""The CLI's own options: `--version` (and `agentslo.__version__`), and the global logging flags."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import agentslo
from agentslo import cli

AGENT_SLO = Path(sys.executable).with_name("agent-slo")  # the console script installed beside Python


def test_version_is_the_installed_distributions() -> None:
    assert agentslo.__version__ == version("agent-slo")


def test_version_falls_back_when_the_package_is_not_installed() -> None:
    code = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import agentslo; print(agentslo.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "0+unknown"


@pytest.mark.skipif(not AGENT_SLO.exists(), reason="the agent-slo console script is not installed here")
def test_agent_slo_version_prints_name_and_version() -> None:
    out = subprocess.run([str(AGENT_SLO), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"agent-slo {agentslo.__version__}\n"


def test_version_loads_no_command() -> None:
    code = (
        "import sys\nfrom agentslo import cli\n"
        "try:\n    cli.main(['--version'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('agentslo.') and m.count('.') > 1))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines()[-1] == "[]", out.stdout  # no wing (agentslo.exporter.app, ...) imported


def test_log_flags_come_before_the_command_and_set_up_logging(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--log-level", "DEBUG", "--log-format", "json", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)  # the command ran, its output untouched
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("agentslo.schema").debug("seen")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "seen"


def test_an_unknown_log_level_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--log-level", "loud", "schema"])
    assert info.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "flags", "level"),
    [
        ("serve", {}, "info"),  # the exporter has always logged its progress
        ("probe", {"once": False, "quiet": False}, "info"),  # the prober's loop: one line per cycle
        ("probe", {"once": True, "quiet": False}, "warning"),  # a deploy step prints its own report
        ("probe", {"once": False, "quiet": True}, "warning"),
        ("validate", {}, "warning"),
        ("demo", {}, "warning"),
    ],
)
def test_without_log_level_each_command_logs_as_it_did_before_the_flag(
    command: str, flags: dict[str, bool], level: str
) -> None:
    args = argparse.Namespace(command=command, log_level=None, **flags)
    assert cli._log_level(args) == level
    assert cli._log_level(argparse.Namespace(command=command, log_level="error", **flags)) == "error"
