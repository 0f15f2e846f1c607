"""OTLP/HTTP ingest: OpenTelemetry GenAI traces and evaluation logs become the exporter's events.

- `decode`: request bodies (protobuf, JSON, gzip) to the official generated messages, and answers;
- `mapping`: spans and log records to `POST /v1/events` events, per the GenAI conventions and the
  spec's `otel:` section;
- `receiver`: exactly once per span, through the ingest's validation and atomic apply path;
- `routes`: the aiohttp handlers of `POST /v1/traces` and `POST /v1/logs`.
"""
