"""Datasets from labelled reviews: balanced calibration lines, the regression set, regression scenarios
that the prober's loader accepts, and the calibration reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentslo.feedback.datasets import (
    DatasetError,
    calibration_set,
    read_dataset,
    regression_scenarios,
    regression_set,
)
from agentslo.scenario import parse_scenarios
from agentslo.spec import load_spec

SPEC = load_spec("examples/cx-support.slo.yaml")


def review(
    sid: str,
    label: str | None,
    *,
    judge: str | None = "faithfulness",
    passed: bool | None = False,
    user: str = "Refund order A-1 please",
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "id": hash(sid) % 1000,
        "session_id": sid,
        "agent": "cx-support",
        "flow": "refund",
        "judge": judge,
        "judge_version": "3",
        "score": 0.2 if not passed else 0.9,
        "passed": passed,
        "label": label,
        "note": note,
        "session": {
            "session_id": sid,
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": "3-5 business days"},
            ],
            "context": ["ctx"],
            "tool_calls": [
                {"tool": "get_order", "input": {"order_id": "A-1"}, "output": {"status": "delivered"}},
                {"tool": "issue_refund", "input": {"order_id": "A-1"}, "output": {"ok": True}},
            ],
        },
    }


def test_calibration_is_balanced_per_judge_and_drops_edge_cases() -> None:
    reviews = [review(f"f{i}", "correct") for i in range(6)]  # judge failed, rightly: human fail
    reviews += [review(f"p{i}", "false_positive") for i in range(2)]  # judge failed, wrongly: human pass
    reviews += [review("e", "edge_case"), review("sli", "real_failure", judge=None, passed=None)]
    lines, balanced = calibration_set(reviews)
    assert balanced and [line["human_pass"] for line in lines].count(True) == 2 and len(lines) == 4
    assert {line["judge"] for line in lines} == {"faithfulness"}
    first = lines[0]
    assert first["messages"][1]["content"] == "3-5 business days" and first["output"] == "3-5 business days"
    assert calibration_set(reviews)[0] == lines  # deterministic choice
    everything, _ = calibration_set(reviews, balanced=False)
    assert len(everything) == 8


def test_a_one_sided_calibration_set_says_it_is_not_balanced() -> None:
    lines, balanced = calibration_set([review("a", "correct"), review("b", "correct")])
    assert len(lines) == 2 and not balanced


def test_regression_set_has_each_real_failure_once_with_the_judges_that_failed_it() -> None:
    reviews = [
        review("a", "real_failure", judge="refund-policy", note="quotes 3-5 days"),
        review("a", "real_failure", judge="faithfulness"),
        review("b", "correct"),
        review("c", "real_failure", judge=None, passed=None),
    ]
    lines = regression_set(reviews)
    assert [(x["session_id"], x["failed_judges"]) for x in lines] == [
        ("a", ["refund-policy", "faithfulness"]),
        ("c", []),
    ]
    assert lines[0]["notes"] == ["quotes 3-5 days"]


def test_regression_scenarios_load_in_the_prober_and_replay_tools() -> None:
    reviews = [
        review("Sess:1/ABC", "real_failure", judge="refund-policy"),
        review("sess-2", "real_failure", judge=None, passed=None, note="never confirmed the refund"),
        review("no-user", "real_failure", user=""),
    ]
    document, skipped = regression_scenarios(regression_set(reviews), SPEC)
    assert skipped == ["no-user"]
    text = yaml.safe_dump(document, sort_keys=False)
    scenarios = {s.name: s for s in parse_scenarios(text, "regression.yaml", SPEC)}
    assert set(scenarios) == {"regression-sess-1-abc", "regression-sess-2"}
    first = scenarios["regression-sess-1-abc"]
    assert [a.judge for a in first.assert_] == ["refund-policy"]
    assert first.turns[0].user == "Refund order A-1 please"
    assert first.tools["get_order"].answer({"order_id": "A-1"}) == {"status": "delivered"}
    rubric = scenarios["regression-sess-2"].assert_[0]
    assert rubric.type == "llm-rubric" and "never confirmed the refund" in rubric.value


def test_long_or_clashing_session_ids_get_distinct_valid_names() -> None:
    reviews = [review("x" * 100, "real_failure"), review("X" * 100, "real_failure")]
    document, _ = regression_scenarios(regression_set(reviews), SPEC)
    names = list(document["scenarios"])
    assert len(names) == 2 and len(set(names)) == 2 and all(len(n) <= 63 for n in names)
    parse_scenarios(yaml.safe_dump(document), "r.yaml", SPEC)


def test_read_dataset_accepts_the_three_label_forms(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"session_id": "a", "human_pass": True, "output": "x"},
                {"session_id": "b", "expected": "fail", "messages": [{"role": "assistant", "content": "y"}]},
                {"session_id": "c", "label": "correct", "judge_passed": False, "judge": "faithfulness"},
            ]
        )
        + "\n\n"
    )
    cases = read_dataset(path)
    assert [(c.case.session_id, c.human_pass, c.judge) for c in cases] == [
        ("a", True, None),
        ("b", False, None),
        ("c", False, "faithfulness"),
    ]
    assert cases[1].case.output == "y"


def test_read_dataset_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"human_pass": true}\nnot json\n[1]\n{"label": "edge_case"}\n{"human_pass": 1, "messages": {}}\n'
    )
    with pytest.raises(DatasetError) as err:
        read_dataset(path)
    message = str(err.value)
    for line in (2, 3, 4, 5):
        assert f"d.jsonl:{line}:" in message
    assert "d.jsonl:1:" not in message
