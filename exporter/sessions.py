"""Sessions, review and datasets: the feedback-loop half of the exporter's HTTP API.

`setup(app)` registers the routes below and starts the judging pipeline (`exporter.judging`) and the
session store (`exporter.session_store`) with the app:

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

Settings come from `app[SESSIONS_CONFIG]` when set, else from `AGENT_SLO_SESSIONS_*` environment
variables (`SessionsConfig.from_env`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
import yaml
from aiohttp import web
from pydantic import ValidationError

from agentslo.durations import parse_duration
from agentslo.exporter import session_store as st
from agentslo.exporter.judging import Ingestor, Overloaded, Pipeline, PipelineConfig, burn_weight
from agentslo.judges import datasets
from agentslo.judges.api_schema import OPENAPI_PATHS
from agentslo.judges.redact import Redactor
from agentslo.judges.session import (
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


@dataclass(frozen=True)
class SessionsConfig:
    """Where and how sessions are kept, and how much judging work may wait."""

    db_path: str | None = None  # None: `sessions.db` next to the exporter's database, else in memory
    retention_s: float = st.DEFAULT_RETENTION_S
    labelled_retention_s: float = st.DEFAULT_LABELLED_RETENTION_S
    max_bytes: int = st.DEFAULT_MAX_BYTES
    redact: str = "email,phone,card"  # or "none"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SessionsConfig:
        """From `AGENT_SLO_SESSIONS_*`, `AGENT_SLO_REDACT` and `AGENT_SLO_JUDGE_*` (see ENV); a bad value
        is a ValueError naming the variable."""
        p = PipelineConfig()

        def get(name: str, default: str, parse: Callable[[str], Any], ok: Callable[[Any], bool]) -> Any:
            raw = env.get(name, default)
            try:
                value = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r}: {exc}") from None
            if not ok(value):
                raise ValueError(f"{name}={raw!r} is out of range ({ENV[name]})")
            return value

        def positive(x: float) -> bool:
            return x > 0

        get("AGENT_SLO_REDACT", "email,phone,card", Redactor.parse, bool)  # fail at start, not on first use
        return cls(
            db_path=env.get("AGENT_SLO_SESSIONS_DB") or None,
            retention_s=get("AGENT_SLO_SESSIONS_RETENTION", "7d", parse_duration, positive),
            labelled_retention_s=get(
                "AGENT_SLO_SESSIONS_LABELLED_RETENTION", "90d", parse_duration, positive
            ),
            max_bytes=int(get("AGENT_SLO_SESSIONS_MAX_MB", "256", float, positive) * 1024 * 1024),
            redact=env.get("AGENT_SLO_REDACT", "email,phone,card"),
            pipeline=PipelineConfig(
                intake_size=get("AGENT_SLO_JUDGE_INTAKE", str(p.intake_size), int, positive),
                llm_queue_size=get("AGENT_SLO_JUDGE_QUEUE", str(p.llm_queue_size), int, positive),
                store_sample_rate=get(
                    "AGENT_SLO_SESSIONS_SAMPLE_RATE", str(p.store_sample_rate), float, lambda x: 0 <= x <= 1
                ),
                judge_process=env.get("AGENT_SLO_JUDGE_PROCESS", "1").lower() not in ("0", "false", "no"),
            ),
        )


# The environment variables `SessionsConfig.from_env` reads, and what they mean.
ENV: dict[str, str] = {
    "AGENT_SLO_SESSIONS_DB": "session store SQLite file (default: sessions.db next to --db, else in memory)",
    "AGENT_SLO_SESSIONS_RETENTION": "how long unlabelled sessions are kept (Prometheus duration, default 7d)",
    "AGENT_SLO_SESSIONS_LABELLED_RETENTION": "how long labelled sessions are kept (default 90d)",
    "AGENT_SLO_SESSIONS_MAX_MB": "size limit of stored session bodies in MiB (default 256)",
    "AGENT_SLO_SESSIONS_SAMPLE_RATE": "head sample kept although nothing marked it bad, 0-1 (default 0.01)",
    "AGENT_SLO_REDACT": "what to redact before storing: email,phone,card (default), all, or none",
    "AGENT_SLO_JUDGE_INTAKE": "sessions waiting for the rule stage before 503 (default 10000)",
    "AGENT_SLO_JUDGE_QUEUE": "sessions waiting per LLM judge before its verdicts are shed (default 1000)",
    "AGENT_SLO_JUDGE_PROCESS": "1 (default): LLM judge calls in a child process; 0: in the exporter process",
}

SESSIONS = web.AppKey("agent_slo_sessions", Pipeline)
SESSIONS_CONFIG = web.AppKey("agent_slo_sessions_config", SessionsConfig)


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
    return request.app[SESSIONS]


# --- POST /v1/sessions ---


async def post_sessions(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    try:
        data = orjson.loads(await request.read())
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
    if pipeline.intake_free() < len(parsed):
        pipeline.stats.refused += len(parsed)
        pipeline.reject("overloaded", len(parsed))
        return _error(503, "the judging queue is full; retry later", headers={"Retry-After": "1"})
    results = []
    for session in parsed:
        spec = pipeline.specs[session.agent]
        record = _record(spec, session, now)
        try:
            results.append(
                pipeline.submit(
                    spec,
                    session.document() | {"time": record.time},
                    record,
                    exclude=session.exclude,
                    trace_id=session.trace_id,
                )
            )
        except Overloaded as exc:
            pipeline.reject("overloaded")
            return _error(503, str(exc), headers={"Retry-After": "1"})
    return _json(results[0] if single else {"sessions": results}, status=202)


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
    return _json({"slo": slo, "window": window, "agent": agent} | top_contributors(rows))


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
    reviews = await pipeline.db(lambda: list(pipeline.store.labelled(judge=judge, agent=agent)))
    if (name, fmt) == ("calibration", "jsonl"):
        balanced = request.query.get("balanced", "true").lower() not in ("false", "0", "no")
        lines, was_balanced = datasets.calibration_set(reviews, balanced=balanced)
        return web.Response(
            body=datasets.dumps_jsonl(lines),
            content_type="application/x-ndjson",
            headers={"X-Agent-SLO-Balanced": str(was_balanced).lower()},
        )
    if (name, fmt) == ("regression", "jsonl"):
        return web.Response(
            body=datasets.dumps_jsonl(datasets.regression_set(reviews)), content_type="application/x-ndjson"
        )
    if (name, fmt) == ("regression", "yaml"):
        if agent is None and len(pipeline.specs) != 1:
            return _error(400, "`agent` is required: scenario files belong to one agent")
        spec = pipeline.specs.get(agent or next(iter(pipeline.specs)))
        if spec is None:
            return _error(404, f"unknown agent {agent!r}")
        document, skipped = datasets.regression_scenarios(datasets.regression_set(reviews), spec)
        head = f"# Regression scenarios from sessions labelled real_failure ({len(document['scenarios'])}).\n"
        if skipped:
            head += f"# Not convertible (no user turn or nothing to assert): {', '.join(skipped)}\n"
        text = head + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return web.Response(text=text, content_type="application/yaml")
    return _error(404, f"no dataset {name}.{fmt}: use calibration.jsonl, regression.jsonl or regression.yaml")


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
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        problems.append({"index": 0, "field": "n", "problem": "a non-negative integer"})
    if problems or spec is None or not isinstance(ratio, int | float):
        return _error(400, "invalid agreement", problems)
    version = str(body.get("judge_version") or spec.judges[judge].version)
    await pipeline.set_agreement(spec.agent, judge, version, float(ratio), n, "calibrate")
    return _json({"agent": spec.agent, "judge": judge, "judge_version": version, "ratio": ratio, "n": n})


async def get_status(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    count = await pipeline.db(pipeline.store.count)
    return _json(
        pipeline.stats.as_dict()
        | {
            "queues": pipeline.queue_depths(),
            "stored_sessions": count,
            "stored_bytes": pipeline.store.total_bytes,
        }
    )


# --- wiring ---


def _exporter_parts(app: web.Application) -> tuple[dict[str, Spec] | None, Ingestor | None, str | None]:
    """Specs, ingestor and counters database path of the exporter app (`exporter.app.create_app`)."""
    from agentslo.exporter import app as exporter_app  # imported late: exporter.app imports this module

    specs = {s.agent: s for s in app[exporter_app.SPECS]} if exporter_app.SPECS in app else None
    ingestor = app[exporter_app.INGESTOR] if exporter_app.INGESTOR in app else None
    config = app.get(exporter_app.CONFIG)
    return specs, ingestor, config.db_path if config is not None else None


def setup(
    app: web.Application,
    *,
    specs: Iterable[Spec] | None = None,
    ingestor: Ingestor | None = None,
    config: SessionsConfig | None = None,
    client: openai.AsyncOpenAI | None = None,
) -> None:
    """Register the sessions, review and dataset routes; the pipeline starts and stops with the app.

    Specs and the ingestor default to the exporter app's own (`exporter.app`); pass them to run the
    routes in another app (tests, tools)."""
    app.router.add_post("/v1/sessions", post_sessions)
    app.router.add_get("/v1/sessions/top", get_top)
    app.router.add_get("/v1/review", get_review)
    app.router.add_post("/v1/review/{id}/label", post_label)
    app.router.add_get(r"/v1/datasets/{name:[a-z0-9_-]+}.{ext:jsonl|yaml}", get_dataset)
    app.router.add_post("/v1/judges/{judge}/agreement", post_agreement)
    app.router.add_get("/v1/judging", get_status)
    given_specs = {s.agent: s for s in specs} if specs is not None else None

    async def start(app: web.Application) -> None:
        found_specs, found_ingestor, exporter_db = _exporter_parts(app)
        use_specs = given_specs if given_specs is not None else found_specs
        use_ingestor = ingestor if ingestor is not None else found_ingestor
        if use_specs is None or use_ingestor is None:
            raise RuntimeError(
                "exporter.sessions.setup: no specs or ingestor (pass them, or use exporter.app)"
            )
        cfg = app.get(SESSIONS_CONFIG) or config or SessionsConfig.from_env()
        path = cfg.db_path or (
            os.path.join(os.path.dirname(os.path.abspath(exporter_db)), "sessions.db")
            if exporter_db
            else ":memory:"
        )
        store = st.SessionStore(
            path,
            redactor=Redactor.parse(cfg.redact),
            retention_s=cfg.retention_s,
            labelled_retention_s=cfg.labelled_retention_s,
            max_bytes=cfg.max_bytes,
        )
        pipeline = Pipeline(use_specs, use_ingestor, store, cfg.pipeline, client=client)
        app[SESSIONS] = pipeline
        await pipeline.start()

    async def stop(app: web.Application) -> None:
        if SESSIONS in app:
            await app[SESSIONS].stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


__all__ = ["OPENAPI_PATHS", "SESSIONS", "SESSIONS_CONFIG", "SessionsConfig", "setup", "top_contributors"]
