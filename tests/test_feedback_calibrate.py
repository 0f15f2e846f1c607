"""`agent-slo calibrate`: agreement, kappa, TPR/TNR and the best threshold, for rule and LLM judges,
printed, as JSON, and published to an exporter."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agentslo import feedback
from agentslo.cli import main
from agentslo.feedback.calibrate import agreement_at, best_threshold
from tests.doubles.fake_provider import FakeProvider

SPEC = """
version: agent-slo/v1
agent: cx-support
owners: {product: {team: cx}}
flows: {refund: {risk: billing}}
judges:
  faithfulness: {type: llm, model: judge-1, version: "7", rubric: "grounded?", pass_threshold: 0.8,
                 agreement_floor: 0.7, usd_per_1k_input_tokens: 0.1, usd_per_1k_output_tokens: 0.4}
  refund-policy: {type: rule, version: "2", fail_if_matches: ['\\b3\\s*-\\s*5 business days\\b']}
slos:
  refund-policy: {sli: {judge: refund-policy}, objective: 99.5, owner: product}
"""


def line(sid: str, answer: str, human_pass: bool, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": sid,
        "agent": "cx-support",
        "flow": "refund",
        "human_pass": human_pass,
        "messages": [{"role": "user", "content": "refund?"}, {"role": "assistant", "content": answer}],
        "context": ["[score=0.9] Refunds take 10 days."],
        **extra,
    }


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "cx.slo.yaml"
    path.write_text(SPEC)
    return path


def write(tmp_path: Path, lines: list[dict[str, Any]]) -> Path:
    path = tmp_path / "calibration.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_agreement_kappa_tpr_tnr_match_hand_computed_values() -> None:
    # humans: 4 fail, 6 pass. Judge at 0.5: catches 3 of 4 failures, wrongly fails 1 of 6 passes.
    pairs = [(0.1, False), (0.2, False), (0.3, False), (0.9, False), (0.4, True)] + [(0.9, True)] * 5
    a = agreement_at(pairs, 0.5)
    assert a.agreement == pytest.approx(0.8)
    assert a.tpr == pytest.approx(0.75) and a.tnr == pytest.approx(5 / 6)
    # po = 0.8; pe = 0.4*0.4 + 0.6*0.6 = 0.52; kappa = 0.28 / 0.48
    assert a.kappa == pytest.approx(0.28 / 0.48)


def test_kappa_is_undefined_when_everyone_always_agrees_on_one_class() -> None:
    assert agreement_at([(0.9, True)] * 3, 0.5).kappa is None


def test_best_threshold_separates_the_classes() -> None:
    pairs = [(0.55, False), (0.6, False), (0.65, False), (0.7, True), (0.8, True), (0.95, True)]
    best = best_threshold(pairs, 0.9)
    assert best is not None and best.threshold == 0.7 and best.agreement == 1.0
    assert best_threshold([(0.5, True)], 0.8) is None


def test_rule_judge_calibration_reports_and_passes_the_floor(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(
        tmp_path,
        [
            line("a", "It takes 3-5 business days.", False),
            line("b", "It takes 10 business days.", True),
            line("c", "Within 3 - 5 business days!", False),
            line("d", "About 3-5 days, business days.", False),  # the rule misses this failure
            line("e", "Ten days.", True, judge="refund-policy"),
            line("f", "Ten days.", False, judge="other-judge"),  # another judge's line: ignored
            line("g", "Ten days.", True),
            line("h", "Ten days.", True),
            line("i", "Ten days.", True),
        ],
    )
    code = main(["calibrate", str(spec_file), "--judge", "refund-policy", "--dataset", str(data), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["sessions"] == 8 and report["judged"] == 8
    at = report["at_pass_threshold"]
    assert at["agreement"] == pytest.approx(7 / 8) and at["tpr"] == pytest.approx(2 / 3) and at["tnr"] == 1.0
    assert code == 0 and report["below_floor"] is False and report["agreement_floor"] == 0.85


def test_below_the_floor_exits_1_and_says_so(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path, [line("a", "3-5 business days", True), line("b", "ten days", False)])
    code = main(["calibrate", str(spec_file), "--judge", "refund-policy", "--dataset", str(data)])
    out = capsys.readouterr().out
    assert code == 1 and "agreement BELOW the floor 0.85" in out and "agreement 0.000" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "nope"], "has no judge 'nope'"),
        (["--judge", "refund-policy", "--dataset", "/nonexistent.jsonl"], "cannot read the dataset"),
    ],
)
def test_bad_input_exits_2(
    spec_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    full = ["calibrate", str(spec_file), *args]
    if "--dataset" not in full:
        full += ["--dataset", "/dev/null"]
    assert main(full) == 2
    assert message in capsys.readouterr().err


def test_unlabelled_line_is_reported_with_its_line_number(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path, [line("a", "x", True), {"session_id": "b", "messages": []}])
    assert main(["calibrate", str(spec_file), "--judge", "refund-policy", "--dataset", str(data)]) == 2
    assert "calibration.jsonl:2: no usable label" in capsys.readouterr().err


class _Ingestor:
    def __init__(self) -> None:
        self.agreement: dict[tuple[str, str, str], float] = {}

    def apply(self, events: list[dict[str, Any]], *, partial: bool = False) -> None: ...
    def record_judge_call(self, *args: Any) -> None: ...

    def set_judge_agreement(self, agent: str, judge: str, version: str, ratio: float) -> None:
        self.agreement[(agent, judge, version)] = ratio


def _score_from_context(user_text: str) -> dict[str, Any]:
    """A provider whose verdict is written into the case ("[score=0.3]"), to script each line."""
    score = float(user_text.split("[score=")[1].split("]")[0])
    return {"score": score, "label": "pass" if score >= 0.8 else "fail", "explanation": "scripted"}


async def test_llm_judge_calibration_via_the_cli_publishes_agreement_to_the_exporter(
    spec_file: Path, tmp_path: Path
) -> None:
    from agentslo.spec import load_spec

    scores = [(0.9, True), (0.85, True), (0.3, False), (0.6, False), (0.7, True), (0.95, False)]
    data = write(
        tmp_path,
        [
            line(f"s{i}", "answer", human) | {"context": [f"[score={score}] ctx"]}
            for i, (score, human) in enumerate(scores)
        ],
    )
    ingestor = _Ingestor()
    app = web.Application()
    feedback.setup(app, [load_spec(spec_file)], ingestor)
    async with FakeProvider(judge=_score_from_context) as provider, TestServer(app) as exporter:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentslo.cli",
            "calibrate",
            str(spec_file),
            "--judge",
            "faithfulness",
            "--dataset",
            str(data),
            "--base-url",
            provider.base_url,
            "--exporter",
            str(exporter.make_url("/")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode()
    assert proc.returncode == 1, (text, err.decode())  # 4/6 agree: below the 0.7 floor
    assert (
        "agreement 0.667" in text
        and "TPR (failures caught) 0.667" in text
        and "TNR (passes kept) 0.667" in text
    )
    assert "best-separating threshold 0.7: agreement 0.833" in text and "TNR 1.000" in text
    assert (
        "judge cost $0.1440 (720 input + 180 output tokens)" in text
        and "published agent_slo_judge_agreement_ratio" in text
    )
    assert ingestor.agreement == {("cx-support", "faithfulness", "7"): pytest.approx(4 / 6)}
    assert len(provider.requests) == 6
