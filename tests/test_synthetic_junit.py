"""The JUnit report of a probe pass: when the agent cannot be reached, every assertion it kept from
running appears as skipped, the members of an assert-set included."""

from __future__ import annotations

import socket
from pathlib import Path

from agentslo.scenario import Scenario, load_scenarios
from agentslo.spec import load_spec
from agentslo.synthetic.junit import junit_xml
from agentslo.synthetic.runner import run_cycle

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_agent_skips_every_assertion_and_every_set_member() -> None:
    spec = load_spec(ROOT / "examples" / "cx-support.slo.yaml")

    def has_set(sc: Scenario) -> bool:
        groups = [sc.assert_, *(turn.assert_ for turn in sc.turns)]
        return any(a.base == "assert-set" for group in groups for a in group)

    scenarios = [s for s in load_scenarios(spec) if has_set(s)]
    assert scenarios, "the examples should hold a scenario with an assert-set"
    sc = scenarios[0]
    (result,) = await run_cycle(spec, [sc], target_url=f"http://127.0.0.1:{_closed_port()}/v1")
    assert result.error is not None and "could not connect" in result.error

    suite = junit_xml([result]).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    expected: set[str] = set()
    scopes = [*((f"turn {t + 1}", turn.assert_) for t, turn in enumerate(sc.turns)), ("scenario", sc.assert_)]
    for scope, assertions in scopes:
        for a in assertions:
            expected.add(f"{scope}: {a.label()}")
            expected |= {f"{scope}: {a.label()} / {scope}: {m.label()}" for m in a.assert_ or ()}
    assert any(" / " in name for name in expected)
    assert set(cases) == {"run", *expected}
    assert all(cases[name].find("skipped") is not None for name in expected)
    assert suite.get("skipped") == str(len(expected))
