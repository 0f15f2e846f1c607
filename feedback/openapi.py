"""OpenAPI 3 path items of the feedback wing's HTTP routes (`agentslo.feedback.api`): sessions, top
contributors, review, datasets, agreement, status. `agentslo.feedback.setup` returns them, and the
exporter merges them into its `/openapi.json`.

Kept apart from the handlers so the routes module stays about behaviour; the session document's own
schema is `agentslo.feedback.session.SESSION_SCHEMA`.
"""

from __future__ import annotations

from typing import Any

from agentslo.feedback.session import SESSION_SCHEMA


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


def _q(
    name: str, description: str, *, required: bool = False, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_STRINGS = {"type": "array", "items": {"type": "string"}}
_ACCEPTED = {
    "type": "object",
    "required": ["session_id", "duplicate"],
    "properties": {
        "session_id": {"type": "string"},
        "duplicate": {"type": "boolean", "description": "already received: not judged again"},
        "judges": {**_STRINGS, "description": "judges that will look at it"},
        "sampled": {**_STRINGS, "description": "LLM judges whose head sample holds it"},
        "stored": {"type": "boolean", "description": "kept whatever the judges say (bad or sampled)"},
    },
}
_ACCEPTED_MANY = {
    "type": "object",
    "required": ["sessions"],
    "properties": {"sessions": {"type": "array", "items": _ACCEPTED}},
}
_TOP = {
    "type": "object",
    "required": ["slo", "window", "total_sessions", "total_burn", "groups", "facets", "sessions"],
    "properties": {
        "slo": {"type": "string"},
        "window": {"type": "string"},
        "total_sessions": {"type": "integer"},
        "total_burn": {"type": "number"},
        "facets": {"type": "object"},
        "sessions": {"type": "array"},
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["by", "sessions", "burn", "share"],
                "properties": {"common_terms": _STRINGS, "session_ids": _STRINGS},
            },
        },
    },
}
_ITEM = {
    "type": "object",
    "required": ["id", "session_id", "agent", "flow", "flagged", "session"],
    "properties": {
        "id": {"type": "integer"},
        "session_id": {"type": "string"},
        "judge": {"type": "string", "nullable": True},
        "label": {"type": "string", "nullable": True},
        "session": {"type": "object"},
    },
}
_QUEUE = {
    "type": "object",
    "required": ["items", "labels"],
    "properties": {"items": {"type": "array", "items": _ITEM}, "labels": _STRINGS},
}
_LABEL = {
    "type": "object",
    "required": ["label"],
    "properties": {
        "label": {"enum": ["correct", "false_positive", "real_failure", "edge_case"]},
        "reviewer": {"type": "string", "maxLength": 2000},
        "note": {"type": "string", "maxLength": 2000},
    },
}
_AGREEMENT = {
    "type": "object",
    "required": ["ratio"],
    "properties": {
        "agent": {"type": "string"},
        "judge_version": {"type": "string", "description": "the judge's declared version (the default)"},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    },
}

OPENAPI_PATHS: dict[str, Any] = {
    "/v1/sessions": {
        "post": {
            "summary": "Submit a session (or an array of up to 100) for the judges and the session store",
            "description": "Rule judges run on every session, LLM judges on their head sample, "
            "asynchronously; sessions any SLI or judge marks bad, and the head sample, are stored redacted.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                SESSION_SCHEMA,
                                {"type": "array", "items": SESSION_SCHEMA, "minItems": 1, "maxItems": 100},
                            ]
                        }
                    }
                },
            },
            "responses": {
                "202": _ok("queued for judging", {"oneOf": [_ACCEPTED, _ACCEPTED_MANY]}),
                "400": _err("invalid session(s); nothing accepted"),
                "413": _err("too many sessions"),
                "503": _err("judging queue full; retry after Retry-After"),
            },
        }
    },
    "/v1/sessions/top": {
        "get": {
            "summary": "Stored sessions that burned the most budget of an SLO, grouped by what they share",
            "parameters": [
                _q("slo", "SLO name", required=True),
                _q("window", "Prometheus duration (default 1d)"),
                _q("agent", "only this agent"),
            ],
            "responses": {
                "200": _ok("groups, facets and top sessions", _TOP),
                "400": _err("unknown SLO or bad window"),
            },
        }
    },
    "/v1/review": {
        "get": {
            "summary": "The review queue: judge and SLI verdicts on stored sessions, flagged first",
            "parameters": [
                _q(
                    "status",
                    "pending (default), labelled or all",
                    schema={"enum": ["pending", "labelled", "all"]},
                ),
                _q("judge", "only this judge"),
                _q("agent", "only this agent"),
                _q("limit", "page size (max 500)", schema={"type": "integer", "minimum": 0}),
                _q("offset", "page offset", schema={"type": "integer", "minimum": 0}),
            ],
            "responses": {"200": _ok("review items", _QUEUE), "400": _err("bad parameter")},
        }
    },
    "/v1/review/{id}/label": {
        "post": {
            "summary": "Label a review item; updates the judge version's agreement ratio",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _LABEL}}},
            "responses": {
                "200": _ok("the labelled item and the judge's agreement", _ITEM),
                "400": _err("bad label"),
                "404": _err("no such review item"),
            },
        }
    },
    "/v1/datasets/{name}.jsonl": {
        "get": {
            "summary": "Datasets from labelled sessions: `calibration` (balanced per judge) or `regression`",
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["calibration", "regression"]},
                },
                _q("judge", "only this judge"),
                _q("agent", "only this agent"),
                _q("balanced", "calibration: balance passes and failures (default true)"),
            ],
            "responses": {
                "200": _ok("one JSON object per line", {"type": "string"}, "application/x-ndjson"),
                "404": _err("unknown dataset"),
            },
        }
    },
    "/v1/datasets/regression.yaml": {
        "get": {
            "summary": "The regression set as prober scenarios (agent-slo/scenarios/v1)",
            "parameters": [_q("agent", "the agent (required when the exporter serves several)")],
            "responses": {
                "200": _ok(
                    "a scenario file (agent-slo/scenarios/v1)", {"type": "object"}, "application/yaml"
                ),
                "400": _err("agent needed"),
                "404": _err("unknown agent"),
            },
        }
    },
    "/v1/judges/{judge}/agreement": {
        "post": {
            "summary": "Publish a judge version's calibrated agreement with human labels",
            "parameters": [{"name": "judge", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _AGREEMENT}}},
            "responses": {"200": _ok("recorded"), "400": _err("unknown judge or bad ratio")},
        }
    },
    "/v1/judging": {
        "get": {
            "summary": "Judging pipeline status: queue depths and bytes, judge calls by outcome, store size",
            "responses": {"200": _ok("status")},
        }
    },
}
