"""The wheel, as a user gets it: one top-level package with `py.typed`, and `agent-slo demo` working
from a fresh virtualenv outside the checkout, in any folder.

The wheel is built (`pip wheel --no-deps`) from a copy of the checkout, so the build writes nothing
into the working tree. The fresh venv gets the project's dependencies from `.venv` through a `.pth`
file (no network) and the wheel itself with `pip install --no-deps`; the demo then runs with its
working directory in an empty temporary folder, so it can only find the examples the wheel ships.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Caches, virtualenvs and build outputs are not the build's input.
NOT_SOURCES = shutil.ignore_patterns(".*", "build", "dist", "out", "*.egg-info", "__pycache__", "generated")
BUILD_TIMEOUT_S = 600
DEMO_DURATION_S = 20

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "agent-slo"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), "."], source, BUILD_TIMEOUT_S)
    (built,) = out.glob("agent_slo-*.whl")
    return built


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client SDK's wheel: the demo's agent reports through it (a dependency of the server)."""
    source = tmp_path_factory.mktemp("client-source") / "python"
    shutil.copytree(ROOT / "clients" / "python", source, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("client-dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), "."], source, BUILD_TIMEOUT_S)
    (built,) = out.glob("agent_slo_client-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, client_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", str(home)], home.parent, 300)
    python = home / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", query], home, 60).stdout.strip())
    # The dependencies come from the project's .venv, appended after the venv's own site-packages
    # (a path line in a .pth file: .venv's own .pth files, its editable install among them, stay off).
    (site / "agent_slo_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(client_wheel), str(wheel)]
    _run(install, home, 300)
    return home


def test_the_wheel_holds_one_top_level_package_typed_with_its_examples(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"agentslo", "agent_slo-0.1.0.dist-info"}, top
    assert "agentslo/py.typed" in names
    assert {"agentslo/examples/cx-support.slo.yaml", "agentslo/examples/scenarios/refund.yaml"} <= set(names)
    assert "agentslo/demo/agent.py" in names and not any(n.startswith("tests/") for n in names)


def test_agent_slo_demo_runs_from_the_installed_wheel_in_any_folder(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    where = _run([str(python), "-c", "import agentslo; print(agentslo.__file__)"], tmp_path, 60).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout's
    argv = [str(venv / "bin" / "agent-slo"), "demo", "--no-servers", "--duration", str(DEMO_DURATION_S)]
    out = _run(argv, tmp_path, DEMO_DURATION_S + 120).stdout
    assert out.startswith("DEMO TIME:"), out
    assert "skipped: Prometheus and Alertmanager (--no-servers)" in out
    assert re.search(r"demo agent \(OpenAI-compatible\): http://127\.0\.0\.1:\d+/v1", out), out
    # The five packaged scenarios run against the packaged spec. The demo agent fails a share of its
    # conversations by design (its baseline failure and tool-error rates), so one may fail.
    assert re.search(r"prober: [45]/5 scenarios pass", out), out
    assert re.search(r"conversations [1-9]\d*, events reported [1-9]\d*", out), out  # the exporter counts
    assert "=== agent-slo demo summary ===" in out, out
    assert re.search(r"prober: last cycle (5 passed, 0|4 passed, 1) failed", out), out
    assert list(tmp_path.iterdir()) == []  # the demo's files go to a temporary work directory
