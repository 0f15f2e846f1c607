"""Regression scenarios exported from labelled production failures load and run unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agentslo.feedback.datasets import regression_scenarios
from agentslo.scenario import parse_scenarios
from agentslo.spec import load_spec
from agentslo.synthetic.runner import run_cycle
from tests.doubles.cx_agent import running_fake_agent

ROOT = Path(__file__).resolve().parent.parent

# A session a reviewer labelled `real_failure`: the agent quoted the retired refund window.
LINE: dict[str, Any] = {
    "session_id": "Sess-8F2C",
    "agent": "cx-support",
    "flow": "refund",
    "failed_judges": ["refund-policy"],
    "notes": ["quoted 3-5 business days"],
    "messages": [
        {"role": "user", "content": "I'd like a refund for order A-1001, it arrived broken."},
        {"role": "assistant", "content": "Order A-1001 is within the window. Shall I refund it?"},
        {"role": "user", "content": "Yes please refund it. How long will it take?"},
        {"role": "assistant", "content": "Refunded. You'll see it in 3-5 business days."},
    ],
    "context": [],
    "tool_calls": [
        {
            "tool": "get_order",
            "input": {"order_id": "A-1001"},
            "output": {
                "order_id": "A-1001",
                "status": "delivered",
                "delivered_on": "2026-11-12",
                "total_usd": 49.9,
            },
        },
        {
            "tool": "issue_refund",
            "input": {"order_id": "A-1001", "amount_usd": 49.9},
            "output": {"refund_id": "R-1", "status": "accepted"},
        },
    ],
    "output": "Refunded. You'll see it in 3-5 business days.",
}


async def test_exported_regression_scenario_replays_and_catches_the_failure_again() -> None:
    spec = load_spec(ROOT / "examples" / "cx-support.slo.yaml")
    document, skipped = regression_scenarios([LINE], spec)
    assert skipped == []
    text = yaml.safe_dump(document, sort_keys=False)
    (scenario,) = parse_scenarios(text, "regression.yaml", spec)
    assert scenario.name == "regression-sess-8f2c" and len(scenario.turns) == 2
    async with running_fake_agent("bad_policy") as agent:
        (still_broken,) = await run_cycle(spec, [scenario], target_url=agent.base_url)
        agent.behaviour = "good"
        (fixed,) = await run_cycle(spec, [scenario], target_url=agent.base_url)
    (failure,) = still_broken.failures()
    assert failure.scope == "scenario" and failure.label == "llm-rubric judge=refund-policy"
    assert failure.message.startswith("expected a judge score ≥ 1; got 0.00")
    assert fixed.passed, [f.message for f in fixed.failures()]
    # the replayed tool results are the production ones, matched on the recorded arguments
    assert still_broken.turns[0].tool_calls[0].result["delivered_on"] == "2026-11-12"
