"""The C++ OTLP mapper tallying straight into the events scanner (`Mapper.tally`, through the
scanner's C API in `exporter/_scan_api.h`): the reports `Scanner.scan()` makes of the JSON that
`Mapper.map()` writes, without that JSON.

Proved on the SDK requests reshaped and mutated by tests/test_otlp_mapper.py's machinery and on the
benchmark's requests: whenever one of them takes a request, both do, with equal reports (keys, key
index and last-trace bytes, traces, number columns and masks, texts, builds, time bounds, the empty-
tokens flag) and equal keys, traces and counts; a value the scanner refuses in the JSON makes the
tally decline (the Python mapping reads the request then). The one asymmetry: a request whose spans
all map to nothing is `[]` as JSON (which the scanner declines as no batch) and `(0, [])` tallied.
Through receivers, the JSON is written only when something asks for it: a batch with a flow the
spec does not declare is refused by classification and counted, partially, from that JSON.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from agentslo.exporter import wire
from agentslo.exporter.otlp import receiver as receiver_module
from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.memory import TraceMemory
from agentslo.spec import Spec, load_spec
from benchmarks.exporter_common import EXAMPLE
from benchmarks.otlp_ingest import bodies, template
from tests.test_otlp_mapper import PLAIN, VARIANTS, receiver, requests, series
from tests.test_otlp_reader import mutate

pytestmark = pytest.mark.skipif(
    receiver_module.Mapper is None or rows.PURE or wire.SCANNER is None,
    reason="the C++ mapper or the events scanner is not built, or AGENT_SLO_PURE_PYTHON=1",
)


def tallied_alike(mapper: Any, body: bytes) -> bool:
    """Whether the mapper tallied the request; when it did, exactly what the scanner makes of map()'s
    JSON, and when it did not, map() declined too or the scanner refuses that JSON."""
    tallied, mapped = mapper.tally(body), mapper.map(body)
    scanned = None if mapped is None else wire.SCANNER.scan(mapped[0])
    if tallied is None:
        assert mapped is None or (scanned is None and mapped[0] != b"[]"), "the tally declined alone"
        return False
    assert mapped is not None, "map() declined a request the tally took"
    n, reports, _, *rest = tallied  # `counted`: none, with no plan table (tests/test_otlp_plans.py)
    assert tuple(rest) == tuple(mapped[1:])  # span keys, trace ids, spans ignored, spans
    if mapped[0] == b"[]":
        assert (n, reports) == (0, [])
    else:
        assert (n, reports) == scanned
    return True


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_tally_is_the_scanners_report_of_the_mappers_json_or_both_decline(variant: str) -> None:
    mapper = receiver_module._mapper(list(VARIANTS[variant].values()), TraceMemory())
    taken: list[bool] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(body=requests(variant))
    def check(body: bytes) -> None:
        taken.append(tallied_alike(mapper, body))

    check()
    assert all(tallied_alike(mapper, body) for body in PLAIN[variant]), "the SDK's own requests"
    # Otherwise the test proves little: as in test_otlp_mapper, about half are taken (Hypothesis draws
    # its examples in runs of alike ones, so a run's share varies widely); at least a quarter must be.
    assert sum(taken) >= len(taken) / 4, f"the tally took only {sum(taken)} of {len(taken)} requests"


def test_the_benchmarks_requests_tally_as_their_json_scans() -> None:
    mapper = receiver_module._mapper([load_spec(EXAMPLE)], TraceMemory())
    for body in bodies(template(1000), 2, seed=3):
        assert tallied_alike(mapper, body), "the benchmark's request was declined"


# Values the JSON carries but the scanner refuses: a number as the flow, a float as the version, a
# text as escalation_required, a session id longer than an id may be.
REFUSED = [
    ("agent_slo.flow", 7),
    ("agent_slo.version", 1.5),
    ("agent_slo.escalation_required", "yes"),
    ("gen_ai.conversation.id", "c" * 257),
]


@pytest.mark.parametrize(("key", "value"), REFUSED)
def test_a_value_the_scanner_refuses_in_the_json_declines_the_tally(key: str, value: Any) -> None:
    mapper = receiver_module._mapper(list(VARIANTS["flow-rules"].values()), TraceMemory())
    base = PLAIN["flow-rules"][0]
    body = mutate(base, [("attribute", i, key, value) for i in range(20)])
    mapped = mapper.map(body)
    assert mapped is not None and wire.SCANNER.scan(mapped[0]) is None, "the JSON must be made and refused"
    assert mapper.tally(body) is None
    assert tallied_alike(mapper, base)


class Counting:
    """The receiver's mapper, counting the JSON it is asked to write (`map`)."""

    def __init__(self, mapper: Any):
        self.mapper, self.maps = mapper, 0

    def tally(self, body: bytes) -> Any:
        return self.mapper.tally(body)

    def map(self, body: bytes) -> Any:
        self.maps += 1
        return self.mapper.map(body)


def fast_receiver(specs: list[Spec]) -> tuple[receiver_module.OtlpReceiver, Counting]:
    otlp = receiver(specs)
    otlp.mapper = counting = Counting(otlp.mapper)
    return otlp, counting


def test_a_request_the_classifier_takes_is_counted_without_its_json() -> None:
    spec = load_spec(EXAMPLE)
    otlp, counting = fast_receiver([spec])
    python = receiver([spec], python_only=True)
    for body in bodies(template(100), 2, seed=5):
        fast = otlp.map_fast(body)
        assert fast is not None and isinstance(fast.events, wire.Decoded)
        assert otlp.traces_fast(fast) == python.traces(rows.read_body(body, python.wanted))
    assert counting.maps == 0
    assert series(otlp) == series(python)


def test_an_undeclared_flow_is_refused_from_the_json_made_on_demand_as_before() -> None:
    """The scanner does not check which flows a spec declares; classification does, refuses the
    tallied batch, and the authoritative path reads the JSON (written then) and counts the rest."""
    specs = list(VARIANTS["flow-rules"].values())
    otlp, counting = fast_receiver(specs)
    python = receiver(specs, python_only=True)
    body = mutate(PLAIN["flow-rules"][0], [("attribute", 0, "agent_slo.flow", "nowhere")])
    fast = otlp.map_fast(body)
    assert fast is not None, "the tally takes a flow it cannot judge"
    reply = otlp.traces_fast(fast)
    assert reply is not None and counting.maps == 1
    assert reply == python.traces(rows.read_body(body, python.wanted))
    assert reply.partial_success.rejected_spans == 1 and "flow" in reply.partial_success.error_message
    assert series(otlp) == series(python)


def test_a_mapper_tallies_only_into_a_scanner() -> None:
    mapper_type = receiver_module.Mapper
    assert mapper_type is not None
    with pytest.raises(TypeError, match="Scanner"):
        mapper_type({}, 10, 10, object())
    with pytest.raises(RuntimeError, match="scanner"):
        mapper_type({}, 10, 10).tally(b"")


def test_without_the_scanner_the_mapper_writes_json_and_counts_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As when `exporter._scan` is not built: the mapper is made without a scanner, and the fast path
    hands the JSON it writes to `wire.decode` and the classifier."""
    monkeypatch.setattr(wire, "SCANNER", None)
    spec = load_spec(EXAMPLE)
    otlp, python = receiver([spec]), receiver([spec], python_only=True)
    for body in bodies(template(100), 2, seed=9):
        fast = otlp.map_fast(body)
        assert fast is not None and isinstance(fast.events, bytes)
        assert otlp.traces_fast(fast) == python.traces(rows.read_body(body, python.wanted))
    assert series(otlp) == series(python)
