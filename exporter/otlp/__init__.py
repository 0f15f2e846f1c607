"""OTLP/HTTP ingest: OpenTelemetry GenAI traces and evaluation logs become the exporter's events.

- `decode`: request bodies (protobuf, JSON, gzip) to the official generated messages, and answers;
- `rows`: a trace request as one row per span with only the attributes the mapping reads, by the C++
  reader (`_reader.cpp`, protobuf's generated C++ classes) or by its pure-Python twin;
- `semconv`: the GenAI conventions' names and readers of OTLP attribute values;
- `memory`: the recent spans of recent traces, and spans waiting for their ancestors (bounded);
- `mapping`: spans and log records to `POST /v1/events` events, per the conventions and the spec's
  `otel:` section;
- `conversation`: a trace's message content as a `POST /v1/sessions` document;
- `receiver`: exactly once per span, through the ingest's validation and atomic apply path;
- `routes`: the aiohttp handlers of `POST /v1/traces` and `POST /v1/logs`.
"""
