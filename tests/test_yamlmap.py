"""Hostile YAML is refused quickly, with a line, and never expanded: bombs, control characters, depth."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentslo._yamlmap import MAX_EXPANDED_NODES, load_with_lines
from agentslo.scenario import parse_scenarios
from agentslo.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
CX = ROOT / "examples" / "cx-support.slo.yaml"


def _bomb(levels: int = 9, width: int = 9, key_prefix: str = "l") -> str:
    """Nested anchors: `width ** levels` leaves from a few hundred bytes."""
    lines = [f"{key_prefix}0: &{key_prefix}0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*{key_prefix}{level - 1}"] * width)
        lines.append(f"{key_prefix}{level}: &{key_prefix}{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        _bomb(),
        _bomb(levels=30, width=2),  # deep and narrow: 2**30
        # a bomb hidden in a mapping used as merge source, then merged many times
        "b: &b {"
        + ", ".join(f"k{i}: [{'1, ' * 50}1]" for i in range(50))
        + "}\n"
        + "\n".join(f"m{i}: {{<<: *b}}" for i in range(100)),
        # a bomb as a key: constructing keys must not expand it either
        _bomb() + "? *l8\n: x\n",
    ],
    ids=["wide", "deep", "merge-keys", "as-key"],
)
def test_alias_bombs_are_refused_before_expansion(text: str) -> None:
    started = time.perf_counter()
    data, _, problems = load_with_lines(text)
    assert time.perf_counter() - started < 2.0
    assert data is None
    assert [p.line for p in problems] == [1]
    assert "aliases expand this document beyond" in problems[0].message


def test_a_recursive_alias_is_refused() -> None:
    data, _, problems = load_with_lines("x: &x\n  - 1\n  - *x\n")
    assert data is None and "aliases expand" in problems[0].message


def test_ordinary_anchors_and_merges_still_load() -> None:
    text = "base: &base {team: cx, channel: pager}\na: {<<: *base, owner: ops}\nb: [*base, *base]\n"
    data, _, problems = load_with_lines(text)
    assert problems == []
    assert data["a"] == {"team": "cx", "channel": "pager", "owner": "ops"} and data["b"] == [data["base"]] * 2


def test_the_bound_leaves_room_for_a_large_real_document() -> None:
    text = "items:\n" + "".join(f"  - {{name: n{i}, value: {i}}}\n" for i in range(MAX_EXPANDED_NODES // 8))
    data, _, problems = load_with_lines(text)
    assert problems == [] and len(data["items"]) == MAX_EXPANDED_NODES // 8


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_control_character_is_named_with_its_line(char: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(f"version: agent-slo/v1\nagent: cx\nflows:\n  a{char}b: {{}}\n", "x.yaml")
    problem = info.value.problems[0]
    assert str(problem).startswith("x.yaml:4:")
    assert f"U+{ord(char):04X}" in problem.message


def test_nesting_too_deep_for_the_parser_is_a_problem_not_a_crash() -> None:
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_spec("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "x.yaml")


def test_a_complex_key_is_refused_as_not_text() -> None:
    data, _, problems = load_with_lines("? [a, b]\n: 1\nc: 2\n")
    assert data == {"c": 2} and [p.message for p in problems] == ["keys must be text"]


def test_scenario_files_are_guarded_the_same_way() -> None:
    with pytest.raises(SpecError) as info:
        parse_scenarios(_bomb(), "s.yaml", load_spec(CX))
    assert "aliases expand" in str(info.value)


def _limit_memory() -> None:
    cap = 1024 * 1024 * 1024  # 1 GiB: expanding any of these bombs needs several
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


@pytest.mark.parametrize("kind", ["spec", "scenario"])
def test_validate_refuses_a_bomb_with_exit_2_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    spec = tmp_path / "agent.slo.yaml"
    if kind == "spec":
        spec.write_text(_bomb())
    else:
        (tmp_path / "scenarios").mkdir()
        (tmp_path / "scenarios" / "bomb.yaml").write_text(_bomb())
        text = CX.read_text().replace("scenarios: [scenarios/*.yaml]", "scenarios: [scenarios/bomb.yaml]")
        assert "scenarios/bomb.yaml" in text
        spec.write_text(text)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "agentslo.cli", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "aliases expand" in done.stderr and "Traceback" not in done.stderr
    assert time.perf_counter() - started < 30


def test_validate_names_the_line_of_a_control_character(tmp_path: Path) -> None:
    spec = tmp_path / "agent.slo.yaml"
    spec.write_text(textwrap.dedent("version: agent-slo/v1\nagent: cx\x00\n"))
    done = subprocess.run(
        [sys.executable, "-m", "agentslo.cli", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{spec}:2:" in done.stderr and "Traceback" not in done.stderr
