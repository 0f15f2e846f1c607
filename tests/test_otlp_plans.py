"""Counting on the mapper's worker against the classifier's plan table (`exporter._scan.Plans`).

Once the classifier has taught the table a request's keys, the C++ tally counts the next such request
itself, GIL released, and `Classifier.run_decoded` takes those counts instead of counting the reports.
Proved against the Python mapping, on one receiver of each kind fed the same long run of reshaped and
mutated SDK requests (fresh ids each, so no span is a retry): the same answers and, to the last bit,
the same series and exemplars, with most requests counted by the table. Then what must make it
decline or be ignored: counts made before the table was forgotten (a refused batch's rollback), plans
only Python counts (judges, synthetic runs), and a value the Python checks refuse.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentslo.exporter import classify, wire
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import PLAN_KEY, UPPER
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.otlp import receiver as receiver_module
from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.receiver import OtlpReceiver
from agentslo.spec import load_spec
from benchmarks.exporter_common import EXAMPLE
from benchmarks.otlp_ingest import bodies, template
from tests.test_otlp_mapper import PLAIN, VARIANTS, receiver, reshape, series, shapes
from tests.test_otlp_reader import edits, mutate

pytestmark = pytest.mark.skipif(
    receiver_module.Mapper is None or rows.PURE or wire.SCANNER is None,
    reason="the C++ mapper or the events scanner is not built, or AGENT_SLO_PURE_PYTHON=1",
)


def fresh_ids(body: bytes) -> bytes:
    """The request with new trace and span ids, consistently (parents follow their spans); ids of other
    sizes are left as they are."""
    req = ExportTraceServiceRequest.FromString(body)
    new: dict[bytes, bytes] = {}

    def renamed(old: bytes) -> bytes:
        if len(old) not in (8, 16):
            return old
        return new.setdefault(old, os.urandom(len(old)))

    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                s.trace_id, s.span_id = renamed(s.trace_id), renamed(s.span_id)
                if s.parent_span_id:
                    s.parent_span_id = renamed(s.parent_span_id)
    return req.SerializeToString()


def exemplars(otlp: OtlpReceiver) -> dict[int, tuple[str, float]]:
    return {slot: (trace, value) for slot, (trace, value, _) in otlp.ingestor.store.exemplars.items()}


def counted_by_table(otlp: OtlpReceiver) -> list[bool]:
    """Records, per request the mapper reads, whether the table counted it and the classifier took it."""
    taken: list[bool] = []
    classifier = otlp.ingestor.classifier
    take = classifier._take_counted

    def spy(events: wire.Decoded, now: float, d: classify.Deltas) -> bool:
        taken.append(take(events, now, d))
        return taken[-1]

    classifier._take_counted = spy  # type: ignore[method-assign]
    return taken


def timed(body: bytes, durations: list[tuple[int, int]]) -> bytes:
    """The request with span i (modulo their number) lasting `ns` nanoseconds, for each (i, ns)."""
    req = ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for i, ns in durations:
        if spans:
            target = spans[i % len(spans)]
            target.end_time_unix_nano = target.start_time_unix_nano + ns
    return req.SerializeToString()


def bounds(otlp: OtlpReceiver) -> list[float]:
    """Every bucket bound of the receiver's histograms (an SLO's threshold is one of them)."""
    return sorted({b for family in otlp.ingestor.store.families.values() for b in family.bounds or ()})


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_taught_table_counts_what_the_classifier_counts_to_the_last_bit(variant: str) -> None:
    specs = list(VARIANTS[variant].values())
    fast, python = receiver(specs), receiver(specs, python_only=True)
    taken = counted_by_table(fast)
    # durations on a bucket bound, just above one and between two: an SLO threshold's edge included
    edges = [b for b in bounds(fast) if b * 1e9 < 2**53]
    seconds = st.sampled_from([*edges, *(b * 1.001 for b in edges), 0.0, 1e-9])
    durations = st.lists(st.tuples(st.integers(0, 99), seconds.map(lambda x: round(x * 1e9))), max_size=8)

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(base=st.sampled_from(PLAIN[variant]), shape=shapes, changes=edits, lasting=durations)
    def check(
        base: bytes, shape: list[tuple[str, int, int]], changes: list[Any], lasting: list[tuple[int, int]]
    ) -> None:
        changed = mutate(reshape(base, shape), [c for c in changes if c[0] not in ("event", "id")])
        body = fresh_ids(timed(changed, lasting))
        read = fast.map_fast(body)
        reply = fast.traces_fast(read) if read is not None else None
        if reply is None:
            fast.traces(rows.read_body(body, fast.wanted))
        python.traces(rows.read_body(body, python.wanted))
        assert series(fast) == series(python)
        assert exemplars(fast) == exemplars(python)

    check()
    assert len(fast.ingestor.classifier.table) > 0
    # Otherwise the test proves little: the mutations refuse many requests outright (an unknown agent
    # or flow), and a new key is counted by Python once before the table knows it.
    assert sum(taken) >= len(taken) / 3, f"the table counted only {sum(taken)} of {len(taken)} requests"


def test_the_benchmarks_requests_are_counted_by_the_table_once_it_is_taught() -> None:
    spec = load_spec(EXAMPLE)
    fast, python = receiver([spec]), receiver([spec], python_only=True)
    taken = counted_by_table(fast)
    for body in bodies(template(1000), 6, seed=41):
        read = fast.map_fast(body)
        assert read is not None
        assert fast.traces_fast(read) == python.traces(rows.read_body(body, python.wanted))
    assert taken == [False] + [True] * 5
    assert series(fast) == series(python)
    assert exemplars(fast) == exemplars(python) != {}


def test_counts_made_before_the_table_was_forgotten_are_not_taken() -> None:
    """A rollback (a refused batch took back series) forgets the plans; a request the worker counted
    with the old table is counted again by the classifier, which teaches the table afresh."""
    spec = load_spec(EXAMPLE)
    fast, python = receiver([spec]), receiver([spec], python_only=True)
    taken = counted_by_table(fast)
    first, second = bodies(template(200), 2, seed=43)
    fast.traces_fast(fast.map_fast(first))  # type: ignore[arg-type]
    python.traces(rows.read_body(first, python.wanted))
    read = fast.map_fast(second)
    assert read is not None and isinstance(read.events, wire.Decoded) and read.events.counted is not None
    table = fast.ingestor.classifier.table
    generation = table.generation()
    fast.ingestor.classifier.forget_plans()
    assert table.generation() == generation + 1 and len(table) == 0
    assert fast.traces_fast(read) == python.traces(rows.read_body(second, python.wanted))
    assert taken == [False, False] and len(table) > 0
    assert series(fast) == series(python)


def test_a_refused_event_takes_its_plans_back_from_the_table_too() -> None:
    """A task of an undeclared model (new `other` series) beside a turn of an undeclared flow: the batch
    is refused by classification, the task's new series rolled back and the table forgotten with
    them, and the rest counted in part; what follows still counts as Python counts it."""
    specs = list(VARIANTS["flow-rules"].values())
    fast, python = receiver(specs), receiver(specs, python_only=True)
    base = PLAIN["flow-rules"][0]
    refused = [("attribute", 6, "gen_ai.request.model", "mmm"), ("attribute", 5, "agent_slo.flow", "nowhere")]
    table = fast.ingestor.classifier.table
    for body in (fresh_ids(base), fresh_ids(mutate(base, refused)), *(fresh_ids(base) for _ in range(3))):
        read = fast.map_fast(body)
        assert read is not None
        generation = table.generation()
        reply = fast.traces_fast(read)
        assert reply == python.traces(rows.read_body(body, python.wanted))
        if reply is not None and reply.partial_success.rejected_spans:
            assert table.generation() == generation + 1  # the refusal's rollback forgot the table
    assert table.generation() == 1
    assert series(fast) == series(python)


def events(*kinds: str) -> bytes:
    """A /v1/events body of one event of each kind, valid for the example spec."""
    made = {
        "turn": {"type": "turn", "agent": "cx-support", "flow": "refund", "latency_s": 0.9},
        "judge": {
            "type": "judge",
            "agent": "cx-support",
            "flow": "refund",
            "judge": "faithfulness",
            "judge_version": "3",
            "score": 0.9,
        },
        "synthetic": {
            "type": "synthetic",
            "agent": "cx-support",
            "flow": "refund",
            "scenario": "refund",
            "passed": True,
        },
    }
    return orjson.dumps([made[k] for k in kinds])


def test_only_plans_that_need_no_python_are_taught() -> None:
    """Judge verdicts and synthetic runs (streaks, last-run gauges) are counted by Python only."""
    ingestor = Ingestor([load_spec(EXAMPLE)], ExporterConfig())
    classifier = ingestor.classifier
    decoded = wire.decode(events("turn", "judge", "synthetic"))
    assert decoded is not None and decoded.reports is not None
    assert classifier.run_decoded(decoded, 2e9) is not None
    assert len(classifier._taught) == 3 and len(classifier.table) == 1


def test_a_plan_table_takes_only_what_the_scanner_reports() -> None:
    plans_type = type(classify._table())
    with pytest.raises(TypeError):
        plans_type(object(), UPPER)
    with pytest.raises(ValueError, match="number columns"):
        plans_type(wire.SCANNER, {"turn": (None,)})
    table = plans_type(wire.SCANNER, UPPER)
    with pytest.raises(ValueError, match="no type"):
        table.learn("nothing", (), [], [], None, [])
    with pytest.raises(TypeError, match="str, bool or None"):
        table.learn("task", (1,) * len(PLAN_KEY["task"]), [], [None] * 3, None, [])
    with pytest.raises(ValueError, match="non-negative"):
        table.learn("connection", (None,) * len(PLAN_KEY["connection"]), [-1], [], None, [])
    assert len(table) == 0
    with pytest.raises(TypeError, match="Plans"):
        receiver_module.Mapper({}, 10, 10, wire.SCANNER, object())
    other = plans_type(wire.SCANNER, UPPER)
    assert receiver_module.Mapper({}, 10, 10, wire.SCANNER, other) is not None


def test_a_value_beyond_its_bound_is_left_to_the_python_checks() -> None:
    """A span longer than a latency may be: the table declines to count the request (as
    `_scan_report` refuses the report), and the classifier refuses that span, counting the rest."""
    specs = list(VARIANTS["flow-rules"].values())
    fast, python = receiver(specs), receiver(specs, python_only=True)
    base = PLAIN["flow-rules"][0]
    counted = []
    for body in (fresh_ids(base), fresh_ids(reshape(base, [("times", 1, 2)]))):
        read = fast.map_fast(body)
        assert read is not None and isinstance(read.events, wire.Decoded)
        counted.append(read.events.counted is not None)
        reply = fast.traces_fast(read)
        assert reply == python.traces(rows.read_body(body, python.wanted))
    assert counted == [False, False]  # the first: no plan taught yet; the second: declined
    assert reply is not None and reply.partial_success.rejected_spans == 1
    assert series(fast) == series(python)
