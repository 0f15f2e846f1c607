"""The feedback wing's HTTP routes: sessions in, top contributors, review, datasets, agreement, status.

| route | what |
|---|---|
| `POST /v1/sessions` | a session (or a JSON array of them) for the judges and the store; 202 |
| `GET /v1/sessions/top?slo=&window=` | sessions that burned the most budget, grouped by what they share |
| `GET /v1/review` | the review queue (flagged first) |
| `POST /v1/review/{id}/label` | `correct`, `false_positive`, `real_failure` or `edge_case` |
| `GET /v1/datasets/{name}.jsonl` | `calibration` (balanced per judge) or `regression` |
| `GET /v1/datasets/regression.yaml` | the regression set as prober scenarios |
| `POST /v1/judges/{judge}/agreement` | a calibrated agreement ratio (`agent-slo calibrate --exporter`) |
| `GET /v1/judging` | queue depths, counts and store size |

Handlers validate at the edge and hand the work to the app's `Pipeline` (`app[PIPELINE]`, set by
`agentslo.feedback.setup`): store calls run on its store thread and whatever reads sessions' text
(top terms, datasets) on its text thread, never on the event loop. Their OpenAPI description is
`agentslo.feedback.openapi.OPENAPI_PATHS`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import yaml
from aiohttp import web
from pydantic import ValidationError

from agentslo.durations import parse_duration
from agentslo.feedback import datasets
from agentslo.feedback import store as st
from agentslo.feedback.pipeline import Overloaded, Pipeline, burn_weight
from agentslo.feedback.session import (
    Session,
    primary_tool,
    sli_bad_events,
    spec_problems,
    top_contributors,
)
from agentslo.spec import Spec

MAX_BATCH_SESSIONS = 100  # sessions per POST; a bigger batch is refused rather than half-queued
MAX_PAGE = 500
MAX_SQLITE_INT = 2**63  # review ids are SQLite integers
DEFAULT_TOP_WINDOW = "1d"
RETRY_AFTER = {"Retry-After": "1"}  # overload answers: the queues drain within seconds

PIPELINE = web.AppKey("agent_slo_feedback_pipeline", Pipeline)


def _error(
    status: int,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": message, "detail": detail or []}
    return web.json_response(body, status=status, headers=headers, dumps=lambda o: orjson.dumps(o).decode())


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _pipeline(request: web.Request) -> Pipeline:
    return request.app[PIPELINE]


# --- POST /v1/sessions ---


async def post_sessions(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    # Bodies being read and parsed are bounded in bytes like the queues behind them: one that does
    # not fit now is refused unread. Without a Content-Length, a body takes the whole budget.
    reserved = request.content_length
    if reserved is None:
        reserved = pipeline.config.reading_bytes
    if not pipeline.start_reading(reserved):
        pipeline.stats.refused += 1
        pipeline.reject("overloaded")
        return _error(503, "the judging queue is full (bodies being read); retry later", headers=RETRY_AFTER)
    try:
        return await _read_sessions(request, pipeline)
    finally:
        pipeline.done_reading(reserved)


async def _read_sessions(request: web.Request, pipeline: Pipeline) -> web.Response:
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        pipeline.reject("invalid_body")
        return _error(400, "the body is not JSON", [{"index": 0, "field": "", "problem": str(exc)}])
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list) or not items:
        pipeline.reject("invalid_body")
        return _error(400, "the body must be a session object or a non-empty JSON array of sessions")
    if len(items) > MAX_BATCH_SESSIONS:
        pipeline.reject("too_large")
        return _error(413, f"at most {MAX_BATCH_SESSIONS} sessions per request (got {len(items)})")
    now = time.time()
    parsed: list[Session] = []
    detail: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            session = Session.model_validate(item)
        except ValidationError as exc:
            detail += [
                {"index": i, "field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()
            ]
            continue
        spec = pipeline.specs.get(session.agent)
        detail += [{"index": i, "field": f, "problem": p} for f, p in spec_problems(spec, session, now)]
        parsed.append(session)
    if detail:
        pipeline.reject("invalid_event", len(items))
        return _error(400, "invalid session(s); nothing was accepted", detail)
    refusal = pipeline.intake_refusal(len(parsed), len(raw))
    if refusal is not None:  # the whole batch or nothing: never half-queued
        pipeline.stats.refused += len(parsed)
        pipeline.reject("overloaded", len(parsed))
        return _error(503, f"{refusal}; retry later", headers=RETRY_AFTER)
    size = len(raw) // len(parsed)  # each session's share of the body, for the queues' byte bounds
    results = []
    for session in parsed:
        try:
            results.append(_submit(pipeline, pipeline.specs[session.agent], session, now, size))
        except Overloaded as exc:
            pipeline.reject("overloaded")
            return _error(503, str(exc), headers=RETRY_AFTER)
    return _json(results[0] if single else {"sessions": results}, status=202)


def accept_document(pipeline: Pipeline, document: dict[str, Any]) -> str | None:
    """Queue one session document that did not come over HTTP (a conversation assembled from OTLP
    traces) exactly as `POST /v1/sessions` would: validated, sampled, judged, stored. Refusals are
    counted by reason like the API's; returns the refusal, None when queued."""
    now = time.time()
    try:
        session = Session.model_validate(document)
    except ValidationError:
        pipeline.reject("invalid_event", 1)
        return "invalid_event"
    spec = pipeline.specs.get(session.agent)
    if spec is None or spec_problems(spec, session, now):
        pipeline.reject("invalid_event", 1)
        return "invalid_event"
    try:
        _submit(pipeline, spec, session, now, len(orjson.dumps(document)))
    except Overloaded:
        pipeline.reject("overloaded", 1)
        return "overloaded"
    return None


def _submit(pipeline: Pipeline, spec: Spec, session: Session, now: float, size: int) -> dict[str, Any]:
    """Queue a validated session for judging (raises Overloaded), whichever door it came through."""
    record = _record(spec, session, now)
    return pipeline.submit(
        spec,
        record.body | {"time": record.time},
        record,
        exclude=session.exclude,
        trace_id=session.trace_id,
        size=size,
    )


def _record(spec: Spec, session: Session, now: float) -> st.SessionRecord:
    bad: dict[str, tuple[int, float]] = {}
    for slo, n in sli_bad_events(spec, session).items():
        excluded = session.exclude is not None and session.exclude in spec.exclusions_of(slo)
        bad[slo] = (n, 0.0 if excluded else n * burn_weight(spec, slo, session.flow))
    return st.SessionRecord(
        session_id=session.session_id,
        agent=session.agent,
        flow=session.flow,
        time=session.time if session.time is not None else now,
        body=session.document(),
        sampled=False,
        version=session.version,
        model=session.model,
        failure_mode=session.failure_mode,
        tool=primary_tool(session),
        outcome=session.outcome,
        bad_slos=bad,
    )


# --- GET /v1/sessions/top ---


async def get_top(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    slo = request.query.get("slo")
    agent = request.query.get("agent")
    window = request.query.get("window", DEFAULT_TOP_WINDOW)
    known = {s for spec in pipeline.specs.values() for s in spec.slos}
    if not slo or slo not in known:
        return _error(
            400,
            f"`slo` must name an SLO: one of {', '.join(sorted(known))}",
            [{"index": 0, "field": "slo", "problem": "missing or unknown"}],
        )
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        return _error(
            400, f"`window` {window!r}: {exc}", [{"index": 0, "field": "window", "problem": str(exc)}]
        )
    rows = await pipeline.db(pipeline.store.bad_sessions, slo, time.time() - seconds, agent)
    top = await pipeline.text(top_contributors, rows)  # reads what users wrote: off the event loop
    return _json({"slo": slo, "window": window, "agent": agent} | top)


# --- review ---


def _int(request: web.Request, name: str, default: int, upper: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"`{name}` must be an integer") from None
    return max(0, min(value, upper))


async def get_review(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    status = request.query.get("status", "pending")
    if status not in ("pending", "labelled", "all"):
        return _error(
            400, "`status` is pending, labelled or all", [{"index": 0, "field": "status", "problem": status}]
        )
    items = await pipeline.db(
        lambda: pipeline.store.reviews(
            status=status,
            judge=request.query.get("judge"),
            agent=request.query.get("agent"),
            limit=_int(request, "limit", 50, MAX_PAGE),
            offset=_int(request, "offset", 0, 10**9),
        )
    )
    return _json({"items": items, "labels": list(st.LABELS)})


async def post_label(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    try:
        review_id = int(request.match_info["id"])
        body = orjson.loads(await request.read())
    except (ValueError, orjson.JSONDecodeError):
        return _error(400, 'expected an integer review id and a JSON body {"label": ...}')
    if not 0 < review_id < MAX_SQLITE_INT:
        return _error(404, f"no review {review_id}")
    label = body.get("label") if isinstance(body, dict) else None
    if label not in st.LABELS:
        return _error(
            400,
            f"`label` must be one of {', '.join(st.LABELS)}",
            [{"index": 0, "field": "label", "problem": f"got {label!r}"}],
        )
    reviewer, note = body.get("reviewer"), body.get("note")
    if not all(v is None or (isinstance(v, str) and len(v) <= 2000) for v in (reviewer, note)):
        return _error(400, "`reviewer` and `note` are optional strings (at most 2000 characters)")
    try:
        review = await pipeline.db(pipeline.store.label, review_id, label, reviewer, note)
    except KeyError:
        return _error(404, f"no review {review_id}")
    agreement = None
    if review["judge"]:
        found = await pipeline.db(
            pipeline.store.label_agreement, review["agent"], review["judge"], review["judge_version"]
        )
        if found is not None:
            ratio, n = found
            await pipeline.set_agreement(
                review["agent"], review["judge"], review["judge_version"], ratio, n, "labels"
            )
            agreement = {"ratio": ratio, "n": n}
    return _json(review | {"agreement": agreement})


# --- datasets ---


async def get_dataset(request: web.Request) -> web.StreamResponse:
    pipeline = _pipeline(request)
    name, fmt = request.match_info["name"], request.match_info["ext"]
    judge, agent = request.query.get("judge"), request.query.get("agent")
    if (name, fmt) not in (("calibration", "jsonl"), ("regression", "jsonl"), ("regression", "yaml")):
        return _error(
            404, f"no dataset {name}.{fmt}: use calibration.jsonl, regression.jsonl or regression.yaml"
        )
    spec = None
    if fmt == "yaml":
        if agent is None and len(pipeline.specs) != 1:
            return _error(400, "`agent` is required: scenario files belong to one agent")
        spec = pipeline.specs.get(agent or next(iter(pipeline.specs)))
        if spec is None:
            return _error(404, f"unknown agent {agent!r}")
    reviews = await pipeline.db(lambda: list(pipeline.store.labelled(judge=judge, agent=agent)))
    if name == "calibration":
        balanced = request.query.get("balanced", "true").lower() not in ("false", "0", "no")
        lines, was_balanced = await pipeline.text(
            lambda: datasets.calibration_set(reviews, balanced=balanced)
        )
        return web.Response(
            body=await pipeline.text(datasets.dumps_jsonl, lines),
            content_type="application/x-ndjson",
            headers={"X-Agent-SLO-Balanced": str(was_balanced).lower()},
        )
    if spec is None:
        body = await pipeline.text(lambda: datasets.dumps_jsonl(datasets.regression_set(reviews)))
        return web.Response(body=body, content_type="application/x-ndjson")
    text = await pipeline.text(_regression_yaml, reviews, spec)
    return web.Response(text=text, content_type="application/yaml")


def _regression_yaml(reviews: list[dict[str, Any]], spec: Spec) -> str:
    document, skipped = datasets.regression_scenarios(datasets.regression_set(reviews), spec)
    head = f"# Regression scenarios from sessions labelled real_failure ({len(document['scenarios'])}).\n"
    if skipped:
        head += f"# Not convertible (no user turn or nothing to assert): {', '.join(skipped)}\n"
    return head + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# --- agreement, status ---


async def post_agreement(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    judge = request.match_info["judge"]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "the body is not JSON")
    body = body if isinstance(body, dict) else {}
    agent = body.get("agent") or (next(iter(pipeline.specs)) if len(pipeline.specs) == 1 else None)
    spec = pipeline.specs.get(agent) if isinstance(agent, str) else None
    ratio, n = body.get("ratio"), body.get("n", 0)
    problems = []
    if spec is None or judge not in spec.judges:
        problems.append({"index": 0, "field": "judge", "problem": f"no judge {judge!r} for agent {agent!r}"})
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        problems.append({"index": 0, "field": "ratio", "problem": "a number from 0 to 1"})
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < MAX_SQLITE_INT:
        problems.append(
            {"index": 0, "field": "n", "problem": f"a non-negative integer below {MAX_SQLITE_INT}"}
        )
    declared = spec.judges[judge].version if spec is not None and judge in spec.judges else None
    raw = body.get("judge_version")
    version = declared if raw is None or raw == "" else str(raw)
    if declared is not None and version != declared:
        # Agreement is published as a label: only the declared version, or any string would be a series.
        problems.append(
            {"index": 0, "field": "judge_version", "problem": f"the judge's version is {declared!r}"}
        )
    if problems or spec is None or not isinstance(ratio, int | float) or version is None:
        return _error(400, "invalid agreement", problems)
    await pipeline.set_agreement(spec.agent, judge, version, float(ratio), n, "calibrate")
    return _json({"agent": spec.agent, "judge": judge, "judge_version": version, "ratio": ratio, "n": n})


async def get_status(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    count = await pipeline.db(pipeline.store.count)
    return _json(
        pipeline.stats.as_dict()
        | {
            "queues": pipeline.queue_depths(),
            "queue_bytes": pipeline.queue_bytes(),
            "stored_sessions": count,
            "stored_bytes": pipeline.store.total_bytes,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the handlers above; they expect `app[PIPELINE]` to be set when the app starts."""
    router.add_post("/v1/sessions", post_sessions)
    router.add_get("/v1/sessions/top", get_top)
    router.add_get("/v1/review", get_review)
    router.add_post("/v1/review/{id}/label", post_label)
    router.add_get(r"/v1/datasets/{name:[a-z0-9_-]+}.{ext:jsonl|yaml}", get_dataset)
    router.add_post("/v1/judges/{judge}/agreement", post_agreement)
    router.add_get("/v1/judging", get_status)
