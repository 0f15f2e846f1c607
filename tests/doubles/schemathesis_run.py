"""One way to run the schemathesis CLI against a running server, for the OpenAPI tests of each wing.

Every run uses the same fixed seed, phases and limits (deterministic, bounded in time), so the
tests differ only in which paths they cover, which checks they hold the server to and how many
examples they draw.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

# The CLI installed beside the interpreter (.venv/bin is not on PATH under .venv/bin/python -m pytest).
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
    "schemathesis"
)
ALL_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
TIMEOUT_S = 120


def run(server: str, token: str, paths: str, *, examples: int, checks: tuple[str, ...] = ALL_CHECKS) -> str:
    """Fuzz the routes of `server`'s /openapi.json matching the `paths` regex; assert schemathesis
    found nothing, and return its output."""
    assert SCHEMATHESIS is not None, "needs the schemathesis CLI"
    argv = [
        SCHEMATHESIS, "run", f"{server}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", ",".join(checks),
        "--max-examples", str(examples), "--max-time", "40",
        "--include-path-regex", paths,
        "--seed", "1", "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "10", "--workers", "1",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out
