"""Backfilled history: weeks of an incident written into Prometheus blocks, so a slow incident (the
three-week drift) can be shown and alerted on now, on clearly dated past data.

Two steps, both with promtool:

1. `task_history_openmetrics` simulates the task SLI's counters (`agent_slo_events_total`, task SLOs
   only) from the fault model, one sample per `step_s`, and `promtool tsdb create-blocks-from
   openmetrics` turns them into blocks;
2. the rules' long windows and period read 5-minute event buckets that Prometheus records as it
   runs; `backfill_buckets` evaluates the generated bucket expression over the history with
   `promtool tsdb create-blocks-from rules` against a Prometheus holding step 1's blocks.

Then a Prometheus started on that data directory with the generated rules sees the history as if it
had been running for the whole time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import yaml

from agentslo import names
from agentslo.demo.faults import Faults, failure_rate
from agentslo.demo.servers import Prometheus, find_binary
from agentslo.demo.traffic import history_openmetrics
from agentslo.spec import Spec

BUCKET_S: Final = 300  # the rules' bucket (rules._plan.BUCKET), as seconds
HISTORY_JOB: Final = "agent-slo-backfill"  # job label of backfilled series, so they are told apart
PROMTOOL_TIMEOUT_S: Final = 300


def task_history_openmetrics(
    spec: Spec,
    faults: Faults,
    start: float,
    end: float,
    *,
    step_s: int = 150,
    tasks_per_minute: Mapping[str, float] | None = None,
    version: str = "1.0.0",
) -> str:
    """OpenMetrics counters of every task SLO's good/bad events from `start` to `end` (unix seconds)
    on the flows of `tasks_per_minute` (default: every flow at 10/min),
    with the failure rate of `faults` at each moment (elapsed = t - start). Counts are expected values
    (no sampling noise), so the history is exactly the fault model's curve. `step_s` must leave two
    samples in every 5m window (at most 150s): `increase()` needs two."""
    task_slos = [s for s, slo in spec.slos.items() if slo.sli.kind == "task"]
    rates = tasks_per_minute or dict.fromkeys(spec.flows, 10.0)
    totals: dict[tuple[str, str, str], float] = {}

    def samples() -> Iterator[tuple[float, str, dict[str, str], float]]:
        t = start
        while t <= end:
            for slo in task_slos:
                for flow in spec.flows_of(slo):
                    if flow not in rates:
                        continue  # no traffic on this flow in the history: no series
                    n = rates[flow] * step_s / 60
                    p = failure_rate(faults, flow, version, t - start)
                    for outcome, share in ((names.GOOD, 1 - p), (names.BAD, p)):
                        key = (slo, flow, outcome)
                        totals[key] = totals.get(key, 0.0) + n * share
                        labels = {
                            names.L_AGENT: spec.agent,
                            names.L_FLOW: flow,
                            names.L_SLO: slo,
                            names.L_OUTCOME: outcome,
                            names.L_EXCLUSION: "",
                            "job": HISTORY_JOB,
                            "instance": "history",
                        }
                        yield t, names.EVENTS_TOTAL, labels, round(totals[key], 6)
            t += step_s

    return history_openmetrics(samples(), {names.EVENTS_TOTAL: "counter"})


def _promtool() -> str:
    path = find_binary("promtool")
    if path is None:
        raise FileNotFoundError("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def create_blocks(openmetrics: str, data_dir: Path) -> None:
    """`promtool tsdb create-blocks-from openmetrics` into `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False) as f:
        f.write(openmetrics)
    try:
        out = subprocess.run(
            [_promtool(), "tsdb", "create-blocks-from", "openmetrics", f.name, str(data_dir)],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
        )
    finally:
        Path(f.name).unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"promtool create-blocks-from openmetrics failed:\n{out.stderr[-2000:]}")


def bucket_rule(rule_files: Mapping[str, str], agent: str) -> dict[str, str]:
    """The generated rule group's 5m event increase, recorded under the bucket name: what the live
    bucket rule keeps once per 5-minute slot."""
    for content in rule_files.values():
        for group in yaml.safe_load(content).get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("record") == names.events_rate("5m") and agent in rule.get("expr", ""):
                    return {"record": names.events_bucket("5m"), "expr": rule["expr"]}
    raise LookupError(f"no {names.events_rate('5m')} rule for agent {agent} in the generated rules")


def backfill_buckets(
    spec: Spec, rule_files: Mapping[str, str], data_dir: Path, start: float, end: float
) -> None:
    """Record the 5m event buckets over [start, end] from the raw history already in `data_dir`."""
    aligned_start = int(start // BUCKET_S + 1) * BUCKET_S
    aligned_end = int(end // BUCKET_S) * BUCKET_S
    with tempfile.TemporaryDirectory(prefix="agent-slo-backfill-") as tmp:
        work = Path(tmp)
        rules = {"groups": [{"name": "backfill-buckets", "rules": [bucket_rule(rule_files, spec.agent)]}]}
        (work / "buckets.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        with Prometheus.start(work / "prom", {"global": {}}, data_dir=data_dir, retention="60d") as prom:
            out = subprocess.run(
                [
                    _promtool(),
                    "tsdb",
                    "create-blocks-from",
                    "rules",
                    f"--start={aligned_start}",
                    f"--end={aligned_end}",
                    f"--url={prom.url}",
                    f"--eval-interval={BUCKET_S}s",
                    f"--output-dir={work / 'blocks'}",
                    str(work / "buckets.yaml"),
                ],
                capture_output=True,
                text=True,
                timeout=PROMTOOL_TIMEOUT_S,
            )
        if out.returncode != 0:
            raise RuntimeError(f"promtool create-blocks-from rules failed:\n{out.stderr[-2000:]}")
        for block in (work / "blocks").iterdir():
            if block.is_dir():
                shutil.move(str(block), data_dir / block.name)
