"""The README's promises: its key reference is the generated one, and its commands are the CI's."""

from __future__ import annotations

import re
from pathlib import Path

from agentslo.schema import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_key_reference_is_generated_from_the_models() -> None:
    section = README.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert section == reference_markdown(), (
        "regenerate the README reference with: agent-slo schema --markdown"
    )


def test_ci_runs_the_readme_test_command_exactly() -> None:
    commands = re.findall(r"^(\./setup\.sh && \S.*)$", README, flags=re.M)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
