"""The msgspec front (`exporter.wire`) never accepts what the dict path refuses, and counts the same."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.exporter_common import events as sample_events
from benchmarks.exporter_common import example_spec
from exporter import wire
from exporter.classify import Classifier, Deltas
from exporter.config import ExporterConfig
from exporter.events import ALLOWED
from exporter.ingest import Ingestor

SPEC = example_spec()
BATCH = sample_events(SPEC, 200, seed=7)
EXTRA = [
    {"type": "escalation", "agent": SPEC.agent, "flow": next(iter(SPEC.flows)), "required": True,
     "performed": True, "context_preserved": True},
    {"type": "connection", "agent": SPEC.agent, "flow": next(iter(SPEC.flows)), "ok": False},
    {"type": "task", "agent": SPEC.agent, "flow": next(iter(SPEC.flows)), "outcome": "success",
     "version": "v1", "prompt_version": "p2", "tokens": {"input": 3}, "time": 1_700_000_000},
]  # fmt: skip
ODD_VALUES = [
    None,
    -1,
    0,
    1.5,
    2**60,
    1e300,
    "",
    "x",
    "\x07",
    True,
    False,
    [],
    {},
    {"input": None},
    "z" * 300,
]


def _fresh() -> Classifier:
    return Ingestor([SPEC], ExporterConfig()).classifier


def _summary(deltas: Deltas | None) -> Any:
    if deltas is None:
        return None
    deltas.finish()
    return (deltas.adds, deltas.sets, deltas.exemplars, deltas.build, deltas.events)


def _both(batch: list[Any]) -> tuple[Any, Any]:
    """(dict path, decoded path) deltas of the same body, each on a fresh classifier."""
    raw = orjson.dumps(batch)
    now = time.time()
    by_dict = _summary(_fresh().run(orjson.loads(raw), now))
    decoded = wire.decode(raw)
    by_wire = None if decoded is None else _summary(_fresh().run_decoded(decoded, now))
    return by_dict, by_wire


def test_struct_fields_are_the_formats_fields() -> None:
    assert set(wire.TYPES) == set(ALLOWED)
    for kind, cls in wire.TYPES.items():
        assert set(cls.__struct_fields__) | {"type"} == ALLOWED[kind], kind


def test_valid_batches_count_the_same() -> None:
    by_dict, by_wire = _both(BATCH + EXTRA)
    assert by_dict is not None
    assert by_wire == by_dict


def test_invalid_bodies_are_left_to_the_authoritative_path() -> None:
    for body in (b"[1]", b'[{"type": "nope"}]', b"\xff", b'[{"type": "turn"}]', b"[{}]"):
        assert wire.decode(body) is None, body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(BATCH) - 1),
            st.sampled_from([*sorted(set().union(*ALLOWED.values())), "bogus"]),
            st.sampled_from([*ODD_VALUES, "<delete>"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_a_mutated_batch_is_never_accepted_by_the_fast_path_alone(mutations: list[Any]) -> None:
    batch = copy.deepcopy(BATCH[:20])
    for index, field, value in mutations:
        event = batch[index % len(batch)]
        if value == "<delete>":
            event.pop(field, None)
        else:
            event[field] = copy.deepcopy(value)
    by_dict, by_wire = _both(batch)
    if by_wire is not None:  # the fast path vouched for the batch: the dict path must agree exactly
        assert by_wire == by_dict
