"""Installing the client SDK into a fresh venv pulls no third-party package (and needs no network).

The wheel is built offline from (a copy of) `clients/python` with this venv's setuptools (no build isolation,
no index), then installed into an empty venv with `--no-index`: that only succeeds when the
distribution declares no dependencies. The venv's site-packages then hold the client and nothing
else new, and importing it loads no module from outside the standard library.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "python"
pytestmark = pytest.mark.timeout(180)

IMPORTS = """
import sys, agentslo_client
from agentslo_client import Client
c = Client("http://127.0.0.1:9", "bot", flow="refund")
with c.task():
    pass
c.close(0.1)
stdlib = set(sys.stdlib_module_names)
outside = sorted({m.split(".")[0] for m in sys.modules} - stdlib - {"agentslo_client", "__main__"})
print(",".join(outside))
"""


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_client_installs_offline_alone_and_imports_only_the_standard_library(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build leaves build/ and egg-info behind
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    built = pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", str(source), "-w", str(tmp_path))
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("agent_slo_client-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.parser.Parser().parsestr(
            zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    assert metadata.get_all("Requires-Dist") is None  # not even an optional extra
    assert {n.split("/")[0] for n in names} == {"agentslo_client", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "agentslo_client/py.typed" in names

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    before = {p.name for p in site.iterdir()}
    # --no-index without --no-deps: would fail if anything had to be fetched
    installed = pip("--python", str(python), "install", "--no-index", str(wheel))
    assert installed.returncode == 0, installed.stderr
    new = {p.name for p in site.iterdir()} - before - {"__pycache__"}
    assert new == {"agentslo_client", "agent_slo_client-0.1.0.dist-info"}

    run = subprocess.run([str(python), "-I", "-c", IMPORTS], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ""  # no module from outside the standard library was imported
    assert sysconfig.get_paths()["purelib"] != str(site)  # it really was another environment
