"""The exporter's OpenAPI 3.0 document, served at `/openapi.json` and checked by schemathesis.

The feedback wing adds its own paths (what `agentslo.feedback.setup` returns); `document()` merges
them.
"""

from __future__ import annotations

from typing import Any

from agentslo.exporter.catalog import EVENT_TYPES, TASK_OUTCOMES, TOOL_OUTCOMES, TURN_KINDS

_JSON = "application/json"
_NUMBER = {"type": "number", "minimum": 0}

ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "field", "problem"],
                "properties": {
                    "index": {"type": "integer", "nullable": True},
                    "field": {"type": "string"},
                    "problem": {"type": "string"},
                },
            },
        },
    },
}

EVENT = {
    "type": "object",
    "required": ["type", "agent", "flow"],
    "description": "One agent event; which fields apply depends on `type` (see DESIGN.md).",
    "properties": {
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "agent": {"type": "string"},
        "flow": {"type": "string"},
        "session_id": {"type": "string", "maxLength": 256},
        "trace_id": {"type": "string", "maxLength": 256},
        "exclude": {"type": "string"},
        "version": {"type": "string"},
        "prompt_version": {"type": "string"},
        "model": {"type": "string"},
        "time": {"oneOf": [{"type": "string", "format": "date-time"}, _NUMBER]},
        "outcome": {"type": "string", "enum": sorted({*TASK_OUTCOMES, *TOOL_OUTCOMES})},
        "escalation_required": {"type": "boolean"},
        "duration_s": _NUMBER,
        "cost_usd": _NUMBER,
        "steps": {"type": "integer", "minimum": 0},
        "tokens": {
            "type": "object",
            "properties": {
                "input": {"type": "integer", "minimum": 0},
                "output": {"type": "integer", "minimum": 0},
            },
        },
        "failure_mode": {"type": "string"},
        "kind": {"type": "string", "enum": list(TURN_KINDS)},
        "latency_s": _NUMBER,
        "tool": {"type": "string"},
        "judge": {"type": "string"},
        "judge_version": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "required": {"type": "boolean"},
        "performed": {"type": "boolean"},
        "context_preserved": {"type": "boolean"},
        "ok": {"type": "boolean"},
        "scenario": {"type": "string"},
        "passed": {"type": "boolean"},
    },
}

ACCEPTED = {
    "type": "object",
    "required": ["accepted"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {"type": "array", "items": {"type": "integer"}},
        "detail": ERROR["properties"]["detail"],  # type: ignore[index]
    },
}

AUTONOMY = {
    "type": "object",
    "required": ["agent", "flow", "state", "code", "allowed_actions", "stale", "reason", "slos"],
    "properties": {
        "agent": {"type": "string"},
        "flow": {"type": "string"},
        "state": {"type": "string", "enum": ["healthy", "warning", "critical", "exhausted"]},
        "code": {"type": "integer", "minimum": 0, "maximum": 3},
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
        "stale": {"type": "boolean"},
        "reason": {"type": "string", "nullable": True},
        "governed_by": {"type": "array", "items": {"type": "string"}},
        "slos": {"type": "array", "items": {"type": "object"}},
        "evaluated_at": {"type": "number", "nullable": True},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "error",
            "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _retry(code: int) -> dict[str, Any]:
    resp = _errors(code)[str(code)]
    resp["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    return {str(code): resp}


def _health(description: str) -> dict[str, Any]:
    ok = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "get": {
            "summary": description,
            "security": [],
            "responses": {"200": {"description": "ok", "content": {_JSON: {"schema": ok}}}, **_errors(503)},
        }
    }


PATHS: dict[str, Any] = {
    "/v1/events": {
        "post": {
            "summary": "Ingest a batch of events (JSON array or NDJSON), atomically unless partial=true",
            "parameters": [
                {"name": "partial", "in": "query", "schema": {"type": "boolean"}},
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "200": {
                    "description": "all counted",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                },
                "207": {
                    "description": "partial: valid events counted, rejected listed",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                },
                **_errors(400, 401, 408, 409, 413, 415, 422),
                **_retry(429),
                **_retry(503),
            },
        }
    },
    "/v1/autonomy": {
        "get": {
            "summary": "Autonomy state, allowed actions and the budget numbers behind them",
            "parameters": [
                {"name": "agent", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "flow", "in": "query", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "state",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Autonomy"}}},
                },
                **_errors(400, 401, 404),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text or OpenMetrics (with exemplars), by content negotiation",
            "security": [],
            "responses": {
                "200": {
                    "description": "exposition",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                }
            },
        }
    },
    "/healthz": _health("liveness"),
    "/readyz": _health("readiness: the counter store is open"),
    "/openapi.json": {
        "get": {
            "summary": "this document",
            "responses": {
                "200": {"description": "OpenAPI 3.0", "content": {_JSON: {"schema": {"type": "object"}}}},
                **_errors(401),
            },
        }
    },
}


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    paths = dict(PATHS)
    for path, item in (extra_paths or {}).items():
        paths[path] = {**paths.get(path, {}), **item}
        # The auth middleware covers these routes too: document its 401 where they did not.
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("security") != []:
                operation.setdefault("responses", {}).setdefault("401", _errors(401)["401"])
    return {
        "openapi": "3.0.3",
        "info": {"title": "agent-slo exporter", "version": "1"},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Event": EVENT, "Accepted": ACCEPTED, "Autonomy": AUTONOMY},
        },
    }
