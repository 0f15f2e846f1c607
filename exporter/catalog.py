"""What the specs imply for the exporter: metric families, the series created at 0, and label folding.

Built once per exporter from its specs. Families get their help text and buckets (every SLO
threshold is a bucket bound, so good/bad is exact); every series the specs imply is created at 0
(the first bad event is a visible increase); restored series are adopted after a restart. The
cardinality guard's state lives here too: which tools, failure modes and models are declared
(anything else folds into `other` and is counted), and the bounded sets of scenarios and judge
versions. Plans (`exporter.planning`) read all of this; this module knows nothing of them.
"""

from __future__ import annotations

import bisect
from typing import Any

from agentslo import names
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import TOKEN_TYPES, TOOL_OUTCOMES, TURN_KINDS
from agentslo.exporter.store import Store
from agentslo.spec import Spec

JUDGE_CALL_OUTCOMES = ("ok", "error")  # created at 0; other outcomes appear (bounded) when recorded
REJECT_REASONS = ("invalid_body", "invalid_event", "too_large", "unauthorized", "overloaded", "conflict")
FOLDABLE = (names.L_TOOL, names.L_FAILURE_MODE, names.L_MODEL, names.L_SCENARIO, names.L_JUDGE_VERSION)

# Default buckets; every SLO threshold is added to its family's bounds so good/bad is exact.
TASK_SECONDS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)  # end-to-end tasks: seconds to minutes
TURN_SECONDS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)  # one model/tool turn: sub-second to seconds
COST_USD = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)  # per task: tenths of a cent to dollars
STEPS = (1, 2, 3, 5, 8, 13, 21, 34, 55)  # LLM + tool calls per task (fibonacci: loops show up)
SCORES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)  # judge scores, 0-1

UNDECLARED = "\x00undeclared"  # plan key for any undeclared tool/failure mode/model (folds into `other`)


def _help() -> dict[str, str]:
    n = names
    return {
        n.EVENTS_TOTAL: "SLI events as classified by the spec (exclusion is empty when the event counts).",
        n.JUDGE_SCORE: "Judge scores (0-1) by judge version.",
        n.TASK_DURATION_SECONDS: "End-to-end task time including tool calls.",
        n.TURN_LATENCY_SECONDS: "Turn, first-response and tool-turn latency.",
        n.TOOL_CALL_LATENCY_SECONDS: "Tool call latency by tool.",
        n.TASK_COST_USD: "Cost per task in US dollars.",
        n.TOKENS_TOTAL: "Tokens used, by model and direction.",
        n.TOOL_CALLS_TOTAL: "Tool calls by tool and outcome.",
        n.FAILURE_MODES_TOTAL: "Labelled failure clusters.",
        n.TASK_STEPS: "Steps (LLM calls + tool calls) per task.",
        n.BUILD_INFO: "The latest agent version, prompt version and model seen, per agent.",
        n.SPEC_INFO: "The SLO spec this exporter runs, by content hash.",
        n.JUDGE_AGREEMENT_RATIO: "Agreement of a judge version with human labels.",
        n.JUDGE_CALLS_TOTAL: "Judge calls by outcome.",
        n.JUDGE_COST_USD_TOTAL: "Judge cost in US dollars by outcome.",
        n.SYNTHETIC_RUNS_TOTAL: "Synthetic scenario runs by outcome.",
        n.SYNTHETIC_CONSECUTIVE_FAILURES: "Consecutive failed runs of a synthetic scenario (0 after a pass).",
        n.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS: "When a scenario last ran (Unix seconds; 0: never).",
        n.RELEASE_OVERRIDES_TOTAL: 'Overrides of a held release gate, by agent and flow ("": all flows).',
        n.INGEST_EVENTS_TOTAL: "Events received by the ingest API, by result.",
        n.INGEST_REJECTED_TOTAL: "Requests refused by the ingest API, by reason.",
        n.LABEL_FOLDED_TOTAL: "Undeclared label values folded into `other` (cardinality guard), by label.",
        n.CLIENT_DROPPED_EVENTS_TOTAL: "Events client SDKs had to drop (queue full, closed), as they report.",
        n.STAGE_LATENCY_SECONDS: "Latency of one voice-pipeline stage of a turn (ASR, LLM, TTS...).",
        n.WORKFLOW_STEPS_TOTAL: "Steps of declared workflows by outcome (good: the step succeeded).",
    }


class Catalog:
    """The specs' metric families and series, and the state of the cardinality guard."""

    def __init__(self, specs: list[Spec], store: Store, config: ExporterConfig):
        self.specs = {s.agent: s for s in specs}
        self.store = store
        self.config = config
        # (agent, flow) → scenarios with series; (agent, judge) → judge versions with series
        self.scenarios: dict[tuple[str, str], set[str]] = {}
        self.judge_versions: dict[tuple[str, str], set[str]] = {}
        # (set, value) admitted to the sets above since `begin()`: what `rollback()` takes back
        self.admitted: list[tuple[set[str], str]] = []
        # Values of the folded labels declared by any spec; anything else is keyed as UNDECLARED, so
        # 100,000 distinct failure modes make one plan, not 100,000.
        self.declared: dict[str, dict[Any, Any]] = {
            fname: {None: None, **{v: v for sp in specs for v in getattr(sp, attr)}}
            for fname, attr in (("tool", "tools"), ("failure_mode", "failure_modes"), ("model", "models"))
        }
        self._define_families()
        for spec in specs:
            self._precreate(spec)

    # --- families and series ---

    def _bounds(self, kinds: tuple[str, ...]) -> list[float]:
        return [
            s.sli.latency.under
            for spec in self.specs.values()
            for s in spec.slos.values()
            if s.sli.latency is not None and s.sli.latency.of in kinds
        ]

    def _define_families(self) -> None:
        n, st, h = names, self.store, _help()
        costs = [s.sli.cost.under_usd for sp in self.specs.values() for s in sp.slos.values() if s.sli.cost]
        thresholds = [j.pass_threshold for sp in self.specs.values() for j in sp.judges.values()]
        # The health score's step and LLM-latency components read the bucket at their bound.
        health = [sp.health for sp in self.specs.values() if sp.health is not None]
        st.family(
            n.EVENTS_TOTAL,
            "counter",
            h[n.EVENTS_TOTAL],
            (n.L_AGENT, n.L_FLOW, n.L_SLO, n.L_OUTCOME, n.L_EXCLUSION),
        )
        st.family(
            n.JUDGE_SCORE,
            "histogram",
            h[n.JUDGE_SCORE],
            (n.L_AGENT, n.L_FLOW, n.L_JUDGE, n.L_JUDGE_VERSION),
            (*SCORES, *thresholds),
        )
        st.family(
            n.TASK_DURATION_SECONDS,
            "histogram",
            h[n.TASK_DURATION_SECONDS],
            (n.L_AGENT, n.L_FLOW),
            (*TASK_SECONDS, *self._bounds(("task",))),
        )
        st.family(
            n.TURN_LATENCY_SECONDS,
            "histogram",
            h[n.TURN_LATENCY_SECONDS],
            (n.L_AGENT, n.L_FLOW, n.L_KIND),
            (*TURN_SECONDS, *self._bounds(TURN_KINDS), *(hp.llm_latency_under for hp in health)),
        )
        st.family(
            n.STAGE_LATENCY_SECONDS,
            "histogram",
            h[n.STAGE_LATENCY_SECONDS],
            (n.L_AGENT, n.L_FLOW, n.L_STAGE),
            TURN_SECONDS,
        )
        st.family(
            n.WORKFLOW_STEPS_TOTAL,
            "counter",
            h[n.WORKFLOW_STEPS_TOTAL],
            (n.L_AGENT, n.L_FLOW, n.L_WORKFLOW, n.L_STEP, n.L_OUTCOME),
        )
        st.family(
            n.TOOL_CALL_LATENCY_SECONDS,
            "histogram",
            h[n.TOOL_CALL_LATENCY_SECONDS],
            (n.L_AGENT, n.L_FLOW, n.L_TOOL),
            TURN_SECONDS,
        )
        st.family(
            n.TASK_COST_USD, "histogram", h[n.TASK_COST_USD], (n.L_AGENT, n.L_FLOW), (*COST_USD, *costs)
        )
        st.family(
            n.TASK_STEPS,
            "histogram",
            h[n.TASK_STEPS],
            (n.L_AGENT, n.L_FLOW),
            (*STEPS, *(hp.max_steps for hp in health)),
        )
        st.family(n.TOKENS_TOTAL, "counter", h[n.TOKENS_TOTAL], (n.L_AGENT, n.L_FLOW, n.L_MODEL, n.L_TYPE))
        st.family(
            n.TOOL_CALLS_TOTAL, "counter", h[n.TOOL_CALLS_TOTAL], (n.L_AGENT, n.L_FLOW, n.L_TOOL, n.L_OUTCOME)
        )
        st.family(
            n.FAILURE_MODES_TOTAL,
            "counter",
            h[n.FAILURE_MODES_TOTAL],
            (n.L_AGENT, n.L_FLOW, n.L_FAILURE_MODE),
        )
        st.family(
            n.BUILD_INFO, "gauge", h[n.BUILD_INFO], (n.L_AGENT, n.L_VERSION, n.L_PROMPT_VERSION, n.L_MODEL)
        )
        st.family(n.SPEC_INFO, "gauge", h[n.SPEC_INFO], (n.L_AGENT, n.L_SPEC_HASH))
        judge_labels = (n.L_AGENT, n.L_JUDGE, n.L_JUDGE_VERSION)
        st.family(n.JUDGE_AGREEMENT_RATIO, "gauge", h[n.JUDGE_AGREEMENT_RATIO], judge_labels)
        st.family(n.JUDGE_CALLS_TOTAL, "counter", h[n.JUDGE_CALLS_TOTAL], (*judge_labels, n.L_OUTCOME))
        st.family(n.JUDGE_COST_USD_TOTAL, "counter", h[n.JUDGE_COST_USD_TOTAL], (*judge_labels, n.L_OUTCOME))
        st.family(
            n.SYNTHETIC_RUNS_TOTAL,
            "counter",
            h[n.SYNTHETIC_RUNS_TOTAL],
            (n.L_AGENT, n.L_FLOW, n.L_SCENARIO, n.L_OUTCOME),
        )
        st.family(
            n.SYNTHETIC_CONSECUTIVE_FAILURES,
            "gauge",
            h[n.SYNTHETIC_CONSECUTIVE_FAILURES],
            (n.L_AGENT, n.L_FLOW, n.L_SCENARIO),
        )
        st.family(
            n.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS,
            "gauge",
            h[n.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS],
            (n.L_AGENT, n.L_FLOW, n.L_SCENARIO),
        )
        st.family(n.RELEASE_OVERRIDES_TOTAL, "counter", h[n.RELEASE_OVERRIDES_TOTAL], (n.L_AGENT, n.L_FLOW))
        st.family(n.INGEST_EVENTS_TOTAL, "counter", h[n.INGEST_EVENTS_TOTAL], (n.L_RESULT,))
        st.family(n.INGEST_REJECTED_TOTAL, "counter", h[n.INGEST_REJECTED_TOTAL], (n.L_REASON,))
        st.family(n.LABEL_FOLDED_TOTAL, "counter", h[n.LABEL_FOLDED_TOTAL], (n.L_AGENT, n.L_LABEL))
        st.family(n.CLIENT_DROPPED_EVENTS_TOTAL, "counter", h[n.CLIENT_DROPPED_EVENTS_TOTAL], (n.L_AGENT,))
        for result in (n.INGEST_ACCEPTED, n.INGEST_REJECTED):
            st.slot(n.INGEST_EVENTS_TOTAL, (result,), persist=False)
        for reason in REJECT_REASONS:
            st.slot(n.INGEST_REJECTED_TOTAL, (reason,), persist=False)

    def _precreate(self, spec: Spec) -> None:
        """Every series the spec implies, at 0, so the first bad event is a visible increase."""
        n, st, a = names, self.store, spec.agent
        for slo, s in spec.slos.items():
            if s.sli.promql is not None:
                continue
            for flow in spec.flows_of(slo):
                for exclusion in ("", *spec.exclusions_of(slo)):
                    for outcome in (n.GOOD, n.BAD):
                        st.slot(n.EVENTS_TOTAL, (a, flow, slo, outcome, exclusion))
                for scenario in (s.sli.synthetic.scenarios or ()) if s.sli.synthetic else ():
                    self.scenario_series(a, flow, scenario)
        for flow in spec.flows:
            for family in (n.TASK_DURATION_SECONDS, n.TASK_COST_USD, n.TASK_STEPS):
                st.slot(family, (a, flow))
            for kind in TURN_KINDS:
                st.slot(n.TURN_LATENCY_SECONDS, (a, flow, kind))
            for tool in (*spec.tools, n.OTHER):
                st.slot(n.TOOL_CALL_LATENCY_SECONDS, (a, flow, tool))
                for outcome in TOOL_OUTCOMES:
                    st.slot(n.TOOL_CALLS_TOTAL, (a, flow, tool, outcome))
            for model in ("", *spec.models):  # "": tasks that name no model
                for kind in TOKEN_TYPES:
                    st.slot(n.TOKENS_TOTAL, (a, flow, model, kind))
            for mode in (*spec.failure_modes, n.OTHER):
                st.slot(n.FAILURE_MODES_TOTAL, (a, flow, mode))
        for flow in spec.flows if spec.pipeline is not None else ():
            for stage in spec.pipeline.stages:  # type: ignore[union-attr]
                st.slot(n.STAGE_LATENCY_SECONDS, (a, flow, stage))
        for workflow_name, workflow in spec.workflows.items():
            for flow in spec.workflow_flows(workflow_name):
                for step in workflow.steps:
                    for outcome in (n.GOOD, n.BAD):
                        st.slot(n.WORKFLOW_STEPS_TOTAL, (a, flow, workflow_name, step, outcome))
        for judge_name, judge in spec.judges.items():
            self.judge_versions.setdefault((a, judge_name), set()).add(judge.version)
            for flow in judge.flows if judge.flows is not None else spec.flows:
                st.slot(n.JUDGE_SCORE, (a, flow, judge_name, judge.version))
            for outcome in JUDGE_CALL_OUTCOMES:
                st.slot(n.JUDGE_CALLS_TOTAL, (a, judge_name, judge.version, outcome))
                st.slot(n.JUDGE_COST_USD_TOTAL, (a, judge_name, judge.version, outcome))
        for label in FOLDABLE:
            st.slot(n.LABEL_FOLDED_TOTAL, (a, label))
        st.slot(n.CLIENT_DROPPED_EVENTS_TOTAL, (a,))
        for flow in ("", *spec.flows):  # "": an override of the whole agent
            st.slot(n.RELEASE_OVERRIDES_TOTAL, (a, flow))
        st.values[st.slot(n.SPEC_INFO, (a, spec.spec_hash), persist=False)] = 1.0

    def begin(self) -> None:
        """Start recording what is admitted to the bounded sets, for a `rollback()`."""
        self.admitted.clear()

    def rollback(self) -> bool:
        """Take back what was admitted since `begin()`; True when there was something."""
        undone = bool(self.admitted)
        while self.admitted:
            seen, value = self.admitted.pop()
            seen.discard(value)
        return undone

    def scenario_series(self, agent: str, flow: str, scenario: str) -> None:
        """A scenario's runs (every outcome), streak and last-run gauges, at 0 unless they exist already."""
        seen = self.scenarios.setdefault((agent, flow), set())
        if scenario not in seen:
            seen.add(scenario)
            self.admitted.append((seen, scenario))
        for outcome in (names.SYNTHETIC_PASSED, names.SYNTHETIC_FAILED, names.SYNTHETIC_PROBER_ERROR):
            self.store.slot(names.SYNTHETIC_RUNS_TOTAL, (agent, flow, scenario, outcome))
        self.store.slot(names.SYNTHETIC_CONSECUTIVE_FAILURES, (agent, flow, scenario))
        self.store.slot(names.SYNTHETIC_LAST_RUN_TIMESTAMP_SECONDS, (agent, flow, scenario))

    def adopt_restored(self) -> None:
        """After a restart: count restored scenarios and judge versions against their bounds, and
        re-create the zero siblings of restored scenarios (their other outcome and streak gauge)."""
        for _, labels, _ in list(self.store.families[names.SYNTHETIC_RUNS_TOTAL].series):
            self.scenario_series(labels[0], labels[1], labels[2])
        for _, labels, _ in self.store.families[names.JUDGE_CALLS_TOTAL].series:
            self.judge_versions.setdefault((labels[0], labels[1]), set()).add(labels[2])
        for _, labels, _ in self.store.families[names.JUDGE_SCORE].series:
            self.judge_versions.setdefault((labels[0], labels[2]), set()).add(labels[3])

    # --- folding (the cardinality guard) ---

    def fold(self, agent: str, label: str, value: str, declared: Any) -> tuple[str, int | None]:
        """`value` if declared, else `other` and the folded-counter slot to increment."""
        if value in declared:
            return value, None
        return names.OTHER, self.store.slot(names.LABEL_FOLDED_TOTAL, (agent, label))

    def bounded(
        self,
        table: dict[tuple[str, str], set[str]],
        key: tuple[str, str],
        label: str,
        value: str,
        limit: int,
        keep: tuple[str, ...] = (),
    ) -> tuple[str, int | None]:
        """A free-text label value, admitted until `limit` distinct values exist, then folded."""
        seen = table.setdefault(key, set())
        if value in seen or value in keep:
            return value, None
        if len(seen) >= limit:
            return names.OTHER, self.store.slot(names.LABEL_FOLDED_TOTAL, (key[0], label))
        seen.add(value)
        self.admitted.append((seen, value))
        return value, None

    def judge_version(self, agent: str, judge: str, version: str) -> tuple[str, int | None]:
        declared = self.specs[agent].judges[judge].version
        return self.bounded(
            self.judge_versions,
            (agent, judge),
            names.L_JUDGE_VERSION,
            version,
            self.config.max_judge_versions,
            (declared,),
        )

    def threshold_index(self, family: str, value: float) -> int:
        bounds = self.store.families[family].bounds
        index = bisect.bisect_left(bounds, value)
        assert bounds[index] == value, "thresholds are bucket bounds by construction"
        return index
