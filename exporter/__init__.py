"""The agent-slo exporter: ingest agent events, classify them by the SLO spec, expose them to Prometheus.

Run it with `agent-slo serve SPEC... [--db counters.db]`, or build the app in-process:

    from agentslo.spec import load_spec
    from agentslo.exporter.app import INGESTOR, create_app
    from agentslo.exporter.config import ExporterConfig

    app = create_app([load_spec("examples/cx-support.slo.yaml")], ExporterConfig(db_path="counters.db"))
    app[INGESTOR].apply([{"type": "task", "agent": "cx-support", "flow": "refund", "outcome": "success"}])

Where things live: `events` (the event format and its validator), `catalog` and `planning` (what
the spec implies: families, series created at 0, per-combination plans, the cardinality guard),
`wire` and `_scan.cpp` (the fast fronts: a C++ scanner over the raw bytes, else msgspec Structs),
`classify` (column-wise batch classification), `ingest` (atomic apply, idempotency, the judges'
metrics), `persist` (SQLite WAL journal), `writer` (group commit), `store` and `exposition` (the
metric table and its text/OpenMetrics rendering), `autonomy` (GET /v1/autonomy), `app`, `command`.
The sessions, review and datasets routes are the feedback wing's (`agentslo.feedback`), mounted by
`app.create_app` with one `feedback.setup` call; its judges' verdicts come back through `ingest`.

A JSON body takes the fastest front that vouches for it: the C++ scanner (`exporter/_scan.cpp`,
simdjson On-Demand; built when setup.sh has installed simdjson and g++), else msgspec, else the
authoritative validator (`events.problems`), which names every problem. The fronts may refuse more
than the validator, never less, and count exactly alike (tests/test_exporter_wire.py).
"""
