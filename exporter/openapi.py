"""The exporter's OpenAPI 3.0 document, served at `/openapi.json` and checked by schemathesis.

The event schemas are derived from the event format's declaration (`exporter.events`): one schema
per type (`TaskEvent`, `TurnEvent`, ...) with its fields, their bounds and allowed values (msgspec's
own JSON Schema of each field's annotation) and its required fields; `Event` is their union,
told apart by `type`. The feedback wing adds its own paths (what `agentslo.feedback.setup`
returns); `document()` merges them.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from agentslo import names
from agentslo.exporter import overrides
from agentslo.exporter.events import FIELDS, MAX_COUNT, PLANNED, TYPES, Field
from agentslo.exporter.overrides import PATH as OVERRIDES_PATH

_JSON = "application/json"
_PROTOBUF = "application/x-protobuf"

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
        # `detail` names the first problems (exporter.validate.MAX_DETAIL); how many more there are
        "omitted": {"type": "integer", "minimum": 1},
    },
}


def _openapi(schema: Any, defs: dict[str, Any]) -> Any:
    """msgspec's JSON Schema of a field as OpenAPI 3.0 takes it: definitions inlined, no defaults or
    titles, and no `null` (the validator refuses it but where a plan reads it as absent)."""
    if isinstance(schema, list):
        return [_openapi(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]], **schema}
    out = {
        key: {name: _openapi(s, defs) for name, s in value.items()}
        if key == "properties"
        else _openapi(value, defs)
        for key, value in schema.items()
        if key not in ("$ref", "$defs", "default", "title")
    }
    if out.get("required") == []:
        del out["required"]  # OpenAPI 3.0: a list of at least one
    options = [option for option in out.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        out |= options[0]
    elif options:
        out["anyOf"] = options
    return out


def _property(spec: Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if spec.values:  # `type` and the enumerations, in their declared order (msgspec sorts them)
        schema = {"type": "string", "enum": list(spec.values)}
    else:
        generated = msgspec.json.schema(spec.hint)
        schema = _openapi(generated, generated.get("$defs", {}))
    if spec.kind in PLANNED and not spec.required:  # the plan reads null as absent: its default applies
        schema["nullable"] = True
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]  # OpenAPI 3.0.3: an enum lists null to allow it
    return schema


def _event(kind: str) -> dict[str, Any]:
    """The schema of one event type, from its declaration."""
    fields = FIELDS[kind]
    return {
        "type": "object",
        "description": inspect.cleandoc(TYPES[kind].__doc__ or ""),
        "required": [name for name, spec in fields.items() if spec.required],
        "properties": {name: _property(spec) for name, spec in fields.items()},
        "additionalProperties": False,
    }


EVENTS = {f"{cls.__name__}Event": _event(kind) for kind, cls in TYPES.items()}
EVENT = {
    "description": "One agent event; its `type` says which fields it takes (see DESIGN.md).",
    "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in EVENTS],
    "discriminator": {
        "propertyName": "type",
        "mapping": {kind: f"#/components/schemas/{cls.__name__}Event" for kind, cls in TYPES.items()},
    },
}

ACCEPTED = {
    "type": "object",
    "required": ["accepted"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {"type": "array", "items": {"type": "integer"}},
        "detail": ERROR["properties"]["detail"],  # type: ignore[index]
        "omitted": ERROR["properties"]["omitted"],  # type: ignore[index]
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


def _otlp(signal: str, summary: str, items: str, rejected: str) -> dict[str, Any]:
    """An OTLP/HTTP export route: the request and response messages in the OTLP JSON mapping (or
    binary protobuf); refusals are a google.rpc.Status in the request's encoding."""
    status = {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    }
    refusal = {
        "description": "refused (google.rpc.Status)",
        "content": {_JSON: {"schema": status}, _PROTOBUF: {"schema": {"type": "string", "format": "binary"}}},
    }
    retry = {**refusal, "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}}
    reply = {
        "type": "object",
        "properties": {
            "partialSuccess": {
                "type": "object",
                "properties": {rejected: {"type": "string"}, "errorMessage": {"type": "string"}},
            }
        },
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    _JSON: {"schema": {"type": "object", "properties": {items: {"type": "array"}}}},
                    _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {
                    "description": f"Export{signal.capitalize()}ServiceResponse (refusals in partialSuccess)",
                    "content": {
                        _JSON: {"schema": reply},
                        _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **{str(code): refusal for code in (400, 401, 408, 413, 415)},
                "429": retry,
                "503": retry,
            },
        }
    }


PATHS: dict[str, Any] = {
    "/v1/events": {
        "post": {
            "summary": "Ingest a batch of events (JSON array or NDJSON), atomically unless partial=true",
            "parameters": [
                {"name": "partial", "in": "query", "schema": {"type": "boolean"}},
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}},
                {
                    "name": names.DROPPED_HEADER,
                    "in": "header",
                    "description": "events the sending client had to drop since its last acknowledged batch",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
                },
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
                **_errors(400, 401, 403, 408, 409, 413, 415, 422),
                **_retry(429),
                **_retry(503),
            },
        }
    },
    "/v1/traces": _otlp(
        "traces",
        "OTLP/HTTP trace export: OpenTelemetry GenAI spans become events (see DESIGN.md, OTLP ingest)",
        "resourceSpans",
        "rejectedSpans",
    ),
    "/v1/logs": _otlp(
        "logs",
        "OTLP/HTTP log export: gen_ai.evaluation.result records become judge events",
        "resourceLogs",
        "rejectedLogRecords",
    ),
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
    OVERRIDES_PATH: {
        "post": {
            "summary": "Count a release-gate override (agent_slo_release_overrides_total); log who and why",
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Override"}}},
            },
            "responses": {
                "201": {
                    "description": "counted",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/OverrideRecorded"}}},
                },
                **_errors(400, 401, 408, 413),
                **_retry(429),
                **_retry(503),
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


def _text(most: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": most}


OVERRIDE: dict[str, Any] = {
    "type": "object",
    "description": "flow absent: the whole agent; agent and flow must be the served spec's",
    "required": list(overrides.REQUIRED),
    "additionalProperties": False,
    "properties": {
        "agent": _text(overrides.MAX_WHO_CHARS),
        "flow": _text(overrides.MAX_WHO_CHARS),
        "reason": _text(overrides.MAX_REASON_CHARS),
        "who": _text(overrides.MAX_WHO_CHARS),
    },
}
OVERRIDE_RECORDED: dict[str, Any] = {
    "type": "object",
    "required": ["agent", "flow", "recorded"],
    "properties": {"agent": {"type": "string"}, "flow": {"type": "string"}, "recorded": {"type": "boolean"}},
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
            "schemas": {
                "Error": ERROR,
                "Event": EVENT,
                **EVENTS,
                "Accepted": ACCEPTED,
                "Autonomy": AUTONOMY,
                "Override": OVERRIDE,
                "OverrideRecorded": OVERRIDE_RECORDED,
            },
        },
    }
