"""The fast fronts of `POST /v1/events` never accept what the dict path refuses, and count the same;
and what is derived from the event format's one declaration (`exporter.events`) agrees.

Three ways into the classifier: the C++ scanner over the raw bytes (`exporter/_scan.cpp`), msgspec
Structs (`exporter.events`, decoded by `exporter.wire`, the fallback), and plain dicts
(`orjson.loads`, which the authoritative validator judges). The scanner may refuse more than
msgspec, never less. The OpenAPI document's event schemas, the validator and the fronts are all
derived from the declaration: on mutated events they accept and refuse alike.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from agentslo.exporter import validate, wire
from agentslo.exporter.classify import Classifier, Deltas
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import ALLOWED, FIELDS, PLANNED
from agentslo.exporter.ingest import Ingestor
from agentslo.exporter.openapi import document
from benchmarks.exporter_common import events as sample_events
from benchmarks.exporter_common import example_spec

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


def _paths(raw: bytes) -> tuple[Any, Any, Any]:
    """(dict path, msgspec path, scanner path) deltas of the same body, each on a fresh classifier;
    None where a path refused (or, for the scanner, is not built)."""
    now = time.time()
    try:
        events = orjson.loads(raw)
    except orjson.JSONDecodeError:
        by_dict = None
    else:
        by_dict = _summary(_fresh().run(events, now)) if isinstance(events, list) else None
    structs = wire.decode(raw, scanner=None)
    scanned = wire.decode(raw) if wire.SCANNER is not None else None
    if scanned is not None and scanned.reports is None:
        scanned = None  # the scanner refused and msgspec took it
    by_structs, by_scanner = (
        None if d is None else _summary(_fresh().run_decoded(d, now)) for d in (structs, scanned)
    )
    return by_dict, by_structs, by_scanner


def _both(batch: list[Any]) -> tuple[Any, Any]:
    """(dict path, each fast path) agree; returns (dict path, msgspec path)."""
    by_dict, by_structs, by_scanner = _paths(orjson.dumps(batch))
    _agree(by_dict, by_structs, by_scanner)
    return by_dict, by_structs


def _agree(by_dict: Any, by_structs: Any, by_scanner: Any) -> None:
    if by_structs is not None:
        assert by_structs == by_dict
    if by_scanner is not None:
        assert by_scanner == by_dict
        assert by_structs is not None, "the scanner accepted what msgspec refuses"


def test_the_scanner_is_built_where_it_can_be() -> None:
    """setup.sh installs simdjson and g++, so on CI (and wherever simdjson is) the fast path is real."""
    if os.environ.get("AGENT_SLO_PURE_PYTHON", "") not in ("", "0"):
        return
    if os.environ.get("CI") == "true" or Path("/usr/include/simdjson.h").exists():
        assert wire.SCANNER is not None, "exporter._scan is not built: rerun ./setup.sh"


def test_valid_batches_count_the_same() -> None:
    by_dict, by_structs, by_scanner = _paths(orjson.dumps(BATCH + EXTRA))
    assert by_dict is not None
    assert by_structs == by_dict
    if wire.SCANNER is not None:
        assert by_scanner == by_dict


E = '{"type": "turn", "agent": "' + SPEC.agent + '", "flow": "refund", "latency_s": 0.4'
RAW_CASES = [  # bodies only the bytes can express; each must count like the dict path, or be refused
    b"  \n[" + E.encode() + b"}]\n\t ",  # whitespace around
    ("[" + E + ', "kind": "\\u0074urn"}]').encode(),  # an escaped value
    ("[" + E.replace('"type"', '"\\u0074ype"') + "}]").encode(),  # an escaped key
    ("[" + E + ', "latency_s": 0.5}]').encode(),  # a duplicate key
    ("[" + E + "}] x").encode(),  # trailing content
    ("[" + E + "},]").encode(),  # a trailing comma
    ("[" + E + "}" + "," + E + "}]").encode(),
    ("[" + E + ', "trace_id": "' + "\u00e9" * 100 + '"}]').encode(),  # 100 characters, 200 bytes
    ("[" + E + ', "trace_id": "' + "é" * 101 + '"}]').encode(),
    ("[" + E + ', "session_id": "' + "é" * 256 + '"}]').encode(),
    ("[" + E + ', "session_id": "' + "é" * 257 + '"}]').encode(),
    ("[" + E + ', "version": "v\\n1"}]').encode(),  # not printable
    ("[" + E + ', "version": "' + "v" * 129 + '"}]').encode(),
    ("[" + E.replace("0.4", "-0.0") + "}]").encode(),
    ("[" + E.replace("0.4", "1e400") + "}]").encode(),
    ("[" + E.replace("0.4", "4e-400") + "}]").encode(),
    ("[" + E.replace("0.4", "18446744073709551616") + "}]").encode(),
    ("[" + E + ', "time": 1e400}]').encode(),
    b"[]",
    b"[1]",
    b"[[]]",
    b"[null]",
    b'[{"type": null}]',
    b"\xef\xbb\xbf[]",
]
TIMES = [
    "2026-01-31T12:00:00Z", "2026-01-31t12:00:00z", "2026-01-31 12:00:00+01:00",
    "2026-01-31T12:00:00.123456789Z", "2026-01-31T12:00:00.1234567891Z", "2026-01-31T12:00:00.Z",
    "2026-01-31T12:00:00", "2026-02-29T12:00:00Z", "2024-02-29T12:00:00Z", "2026-04-31T12:00:00Z",
    "2026-01-31T24:00:00Z", "2026-01-31T12:00:60Z", "2026-01-31T12:00:00+24:00", "2026-01-31T12:00:00-23:59",
    "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "20260131T120000Z",
    "2026-01-31T12:00Z", "2026-01-31T12:00:00+0100", "", "2099-01-01T00:00:00Z",
]  # fmt: skip


def test_raw_bodies_count_like_the_dict_path_or_are_refused() -> None:
    for raw in RAW_CASES:
        _agree(*_paths(raw))


def test_times_count_like_the_dict_path_or_are_refused() -> None:
    for stamp in TIMES:
        for number in (None, 0, 1.5, -1, 1e12):
            batch = [{**BATCH[0], "time": stamp}, {**BATCH[1], "time": number}]
            by_dict, by_structs, by_scanner = _paths(orjson.dumps(batch))
            _agree(by_dict, by_structs, by_scanner)
            if stamp == "2026-01-31T12:00:00Z" and number in (None, 0, 1.5):
                assert by_dict is not None and (wire.SCANNER is None or by_scanner is not None), stamp


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
    _both(batch)  # where a fast path vouched for the batch, the dict path agrees exactly


SMALL = orjson.dumps(BATCH[:6] + EXTRA)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(SMALL)), st.integers(0, 3), st.binary(max_size=4)),
        min_size=1,
        max_size=4,
    )
)
def test_byte_level_mutations_never_crash_and_never_slip_through(edits: list[Any]) -> None:
    """The scanner reads raw client bytes: random edits (replace, insert, delete) must neither crash
    it nor get a batch counted differently from the dict path."""
    raw = bytearray(SMALL)
    for at, cut, data in edits:
        raw[at : at + cut] = data
    _agree(*_paths(bytes(raw)))


AT = {"agent": SPEC.agent, "flow": next(iter(SPEC.flows))}
ONE_OF_EACH = [
    {"type": "task", **AT, "outcome": "success", "escalation_required": False, "failure_mode": "loop",
     "duration_s": 2.5, "cost_usd": 0.1, "steps": 3, "tokens": {"input": 9, "output": 2}, "model": "gpt-4o",
     "exclude": "test_call", "session_id": "s1", "trace_id": "t1", "version": "v1", "prompt_version": "p1",
     "time": "2026-01-31T12:00:00Z"},
    {"type": "turn", **AT, "kind": "first_response", "latency_s": 0.7},
    {"type": "tool_call", **AT, "tool": "get_order", "outcome": "ok", "latency_s": 0.2},
    {"type": "judge", **AT, "judge": "faithfulness", "judge_version": "3", "score": 0.9},
    {"type": "escalation", **AT, "required": True, "performed": True, "context_preserved": False},
    {"type": "connection", **AT, "ok": True},
    {"type": "synthetic", **AT, "scenario": "s1", "passed": False, "duration_s": 3.0},
]  # fmt: skip
VALUES = [
    *(v for v in ODD_VALUES if v != "\x07"),  # printable labels are the validator's own rule
    {"input": 1.5},
    {"bogus": 1},
    2**53 + 1,
    "z" * 257,
    "success",
    "ok",
    "first_response",
    "task",
    "2026-01-31T12:00:00",
    "2026-01-31T12:00:00+01:00",
    1_700_000_000,
    "<delete>",
]
SPEC_NAMES = (
    "agent",
    "flow",
    "exclude",
    "judge",
)  # which names are valid is the spec's to say, not the format's
_COMPONENTS = copy.deepcopy(document()["components"])
_COMPONENTS["schemas"]["Event"].pop("discriminator")  # a hint for tools (and openapi-schema-validator
# fails on unhashable values there); `oneOf` alone decides
SCHEMA = OAS30Validator(
    {"$ref": "#/components/schemas/Event", "components": _COMPONENTS}, format_checker=oas30_format_checker
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(ONE_OF_EACH),
    st.lists(
        st.tuples(
            st.sampled_from([*sorted(set().union(*ALLOWED.values())), "bogus"]), st.sampled_from(VALUES)
        ),
        min_size=1,
        max_size=2,
    ),
)
def test_the_document_the_validator_and_the_fronts_accept_the_same_events(
    base: dict[str, Any], edits: list[Any]
) -> None:
    event = copy.deepcopy(base)
    for field, value in edits:
        if value == "<delete>":
            event.pop(field, None)
        else:
            event[field] = copy.deepcopy(value)
    assume(not any(type(event.get(f)) is str and event[f] != base.get(f) for f in SPEC_NAMES))
    assume(not (type(event.get("time")) in (int, float) and event["time"] > time.time()))  # the clock's
    # a rule between two fields, which an OpenAPI 3.0 schema cannot state
    assume(not (event.get("performed") is True and event.get("context_preserved") is None))
    now = time.time()
    problems = validate.problems(Ingestor([SPEC], ExporterConfig()).planner, [event], now)
    schema_errors = [e.message for e in SCHEMA.iter_errors(event)]
    assert (not problems) == (not schema_errors), (event, problems, schema_errors)
    by_dict, by_structs, by_scanner = _paths(orjson.dumps([event]))
    _agree(by_dict, by_structs, by_scanner)
    if not problems:
        assert by_dict is not None and by_structs == by_dict, event
        assert wire.SCANNER is None or by_scanner == by_dict, event
    elif by_dict is not None:
        # Known and kept: the classifier reads null as absent in any optional field (and in a part of
        # `tokens`), the validator only in categorical ones (a batch that is valid but for such a null
        # is counted whole).
        kinds = FIELDS[event["type"]]
        tokens = event.get("tokens")
        assert any(v is None and kinds[f].kind not in PLANNED for f, v in event.items()) or (
            isinstance(tokens, dict) and None in tokens.values()
        ), (event, problems)


def test_tool_call_evidence_is_taken_by_every_front_and_counts_nothing_more() -> None:
    """`input_hash`, `output_hash` and `parent_task_id` are ids: the scanner itself accepts them (no
    fallback), and the counts are those of the same call without them (never a label)."""
    call = {"type": "tool_call", "agent": SPEC.agent, "flow": next(iter(SPEC.flows)), "outcome": "ok",
            "tool": SPEC.tools[0], "latency_s": 0.2}  # fmt: skip
    evidence = {"input_hash": "sha256:" + "a" * 64, "output_hash": "sha256:" + "b" * 64,
                "parent_task_id": "task-42"}  # fmt: skip
    with_evidence, _ = _both([{**call, **evidence}])
    without, _ = _both([call])
    assert with_evidence is not None and with_evidence == without
    if wire.SCANNER is not None:
        scanned = wire.decode(orjson.dumps([{**call, **evidence}]))
        assert scanned is not None and scanned.reports is not None, "the scanner fell back to msgspec"
