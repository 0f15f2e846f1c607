"""The agent-slo exporter: ingest agent events, classify them by the SLO spec, expose them to Prometheus.

Run it with `agent-slo serve SPEC... [--db counters.db]`, or build the app in-process:

    from agentslo.spec import load_spec
    from agentslo.exporter.app import INGESTOR, create_app
    from agentslo.exporter.config import ExporterConfig

    app = create_app([load_spec("examples/cx-support.slo.yaml")], ExporterConfig(db_path="counters.db"))
    app[INGESTOR].apply([{"type": "task", "agent": "cx-support", "flow": "refund", "outcome": "success"}])

Where things live: `events` (the event format, declared once: one msgspec Struct per type, and the
tables derived from it), `validate` (the authoritative event-by-event validator), `wire` and
`_scan.cpp` (the body: `parse_body`, and the fast fronts: a C++ scanner over the raw bytes, else
msgspec Structs), `catalog` (what the specs imply: families, series created at 0, the cardinality
guard), `planning` (per-combination plans, cached), `classify` (column-wise batch classification),
`ingest` (atomic apply, idempotency, the judges' metrics; a refused batch is rolled back), `replay`
(Idempotency-Key answers kept in memory when there is no SQLite file), `persist` (SQLite WAL
journal), `intake` (what a write must be before its body is parsed: no web pages, no trickling
bodies or headers), `writer` (group commit), `store` and `exposition` (the metric table and its
text/OpenMetrics rendering), `autonomy` (GET /v1/autonomy), `openapi` (the API document; its event
schemas come from `events`), `app`, `command`. The sessions, review and datasets routes are the
feedback wing's (`agentslo.feedback`), mounted by `app.create_app` with one `feedback.setup` call;
its judges' verdicts come back through `ingest`.

One event's way: `app.post_events` → `writer` (queued with the others that arrive meanwhile) →
`wire.parse_body` → `ingest` → `classify` (its plan from `planning`, on first sight) → `persist`
(one commit per group) → `store`, read at scrape time by `exposition`. Nothing calls back into `app`.

A JSON body takes the fastest front that vouches for it: the C++ scanner (`exporter/_scan.cpp`,
simdjson On-Demand; built when setup.sh has installed simdjson and g++), else msgspec, else the
authoritative validator (`validate.problems`), which names every problem. The fronts may refuse
more than the validator and count exactly alike (tests/test_exporter_wire.py); the one thing they
let through that it refuses is `null` in an optional number, id, text, time or tokens field, which
they read as absent.
"""
