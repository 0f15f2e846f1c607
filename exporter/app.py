"""The exporter's aiohttp application: ingest API, `/metrics`, health, OpenAPI and autonomy.

    >>> from agentslo.spec import load_spec
    >>> app = create_app([load_spec("examples/cx-support.slo.yaml")], ExporterConfig())
    >>> app[INGESTOR].apply([...])   # the in-process ingest path (judges, prober)

Handlers are thin: batches go to one writer thread (`exporter.writer`, group commit) so the event
loop keeps answering scrapes and health checks while batches commit, `/metrics` renders on another thread.
Overload is answered 429/503 with `Retry-After`, never by silently dropping events.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from functools import partial

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from agentslo import feedback, names
from agentslo.exporter.autonomy import AutonomyReader
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.events import MAX_COUNT
from agentslo.exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    accepts_gzip,
    render,
    wants_openmetrics,
)
from agentslo.exporter.ingest import Ingestor, body_hash
from agentslo.exporter.intake import browser_problem, read_body
from agentslo.exporter.openapi import document
from agentslo.exporter.otlp.receiver import OtlpReceiver
from agentslo.exporter.otlp.routes import OtlpRoutes
from agentslo.exporter.overrides import PATH as OVERRIDES_PATH
from agentslo.exporter.overrides import OverrideError
from agentslo.exporter.overrides import parse as parse_override
from agentslo.exporter.wire import IngestResult, error
from agentslo.exporter.writer import Writer
from agentslo.spec import Spec

log = logging.getLogger(__name__)

INGESTOR = web.AppKey("ingestor", Ingestor)
AUTONOMY = web.AppKey("autonomy", AutonomyReader)
CONFIG = web.AppKey("config", ExporterConfig)
SPECS = web.AppKey("specs", list)
OPENAPI = web.AppKey("openapi", dict)
_WRITER = web.AppKey("writer", Writer)
_PENDING = web.AppKey("pending", list)
_READING = web.AppKey("reading", list)  # [bytes of request bodies being read right now]

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # readable without the token, per the design
MAX_IDEMPOTENCY_KEY = 255
RETRY_AFTER_BUSY_S = 1  # a full queue drains in well under a second at design throughput
RETRY_AFTER_UNAVAILABLE_S = 5  # storage trouble: give an operator's fix a moment


def _json(result: IngestResult, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(result.body), status=result.status, content_type="application/json", headers=headers
    )


def _fail(
    status: int, message: str, field: str = "", problem: str = "", retry_after: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return _json(
        error(status, message, [{"index": None, "field": field, "problem": problem or message}]), headers
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the API gives is JSON in the design's shape, including aiohttp's own (404, 405, 413)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            request.app[INGESTOR].reject("too_large")
        return _fail(exc.status, exc.reason, problem=exc.text or exc.reason)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return _fail(500, "internal error; the batch was not counted", retry_after=RETRY_AFTER_UNAVAILABLE_S)


@web.middleware
async def _programs_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Writes that a web page could send (foreign Origin, form or text content type) are refused."""
    refused = browser_problem(
        request.method,
        request.content_type if request.body_exists else "",
        request.headers,
        request.host,
        request.app[CONFIG].allowed_origins,
    )
    if refused is not None:
        request.app[INGESTOR].reject("unauthorized" if refused.status == 403 else "invalid_body")
        return _json(refused)
    return await handler(request)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[CONFIG].token
    if token and request.path not in OPEN_PATHS:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            request.app[INGESTOR].reject("unauthorized")
            resp = _fail(
                401, "missing or wrong bearer token", "Authorization", "send Authorization: Bearer <token>"
            )
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
    return await handler(request)


async def post_events(request: web.Request) -> web.StreamResponse:
    app, ingestor, config = request.app, request.app[INGESTOR], request.app[CONFIG]
    flag = request.query.get("partial", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        return _fail(400, "partial must be true or false", "partial")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        return _fail(
            400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters", "Idempotency-Key"
        )
    dropped = request.headers.get(names.DROPPED_HEADER, "0")
    if not (len(dropped) <= 16 and dropped.isascii() and dropped.isdigit() and int(dropped) <= MAX_COUNT):
        return _fail(400, f"{names.DROPPED_HEADER} must be a whole number of events", names.DROPPED_HEADER)
    pending = app[_PENDING]
    if pending[0] >= config.max_pending_batches:
        ingestor.reject("overloaded")
        return _fail(429, "too many batches in flight; retry later", retry_after=RETRY_AFTER_BUSY_S)
    # In flight from the first byte: a retry racing a slow upload of the same batch gets 409.
    if key is not None and not ingestor.begin(key):
        ingestor.reject("conflict")
        return _fail(
            409,
            "a batch with this Idempotency-Key is still being applied; retry later",
            "Idempotency-Key",
            retry_after=RETRY_AFTER_BUSY_S,
        )
    future: asyncio.Future[IngestResult] | None = None
    counted = False  # whether this request holds one of the writer's `max_pending_batches` places
    try:
        # A body being read holds no writer place (64 trickling uploads made every batch a 429).
        raw = await read_body(request, config, app[_READING])
        if isinstance(raw, IngestResult):
            retry = {"Retry-After": str(RETRY_AFTER_BUSY_S)} if raw.status == 429 else None
            return _json(raw, retry)
        if pending[0] >= config.max_pending_batches:
            ingestor.reject("overloaded")
            return _fail(429, "too many batches in flight; retry later", retry_after=RETRY_AFTER_BUSY_S)
        pending[0] += 1
        counted = True
        partial_ = flag in ("true", "1")
        content_type = request.content_type if request.body_exists else ""
        digest = body_hash(raw, partial_) if key is not None else ""  # hashing 250 KiB is not free
        future = app[_WRITER].submit(raw, content_type, partial_, key, digest, int(dropped))
        try:
            # shielded: a client that hangs up does not un-queue a batch that may already be applied
            result = await asyncio.shield(future)
        except Exception as exc:  # storage failure: nothing was counted (the transaction rolled back)
            log.error("ingest failed: %s", exc)
            return _fail(
                503,
                f"could not store the batch ({type(exc).__name__}); nothing was counted",
                retry_after=RETRY_AFTER_UNAVAILABLE_S,
            )
    finally:
        pending[0] -= counted
        if key is not None:
            if (
                future is not None and not future.done()
            ):  # still queued: the key stays in flight until applied
                future.add_done_callback(lambda _: ingestor.end(key))
            else:
                ingestor.end(key)
    headers = {}
    if result.replayed:
        headers["Idempotency-Replayed"] = "true"
    if result.status in (429, 503):
        headers["Retry-After"] = str(RETRY_AFTER_BUSY_S)
    return _json(result, headers)


async def get_metrics(request: web.Request) -> web.StreamResponse:
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    body = await asyncio.get_running_loop().run_in_executor(
        None, partial(render, request.app[INGESTOR].store, openmetrics, gzipped=gzipped)
    )
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    resp.headers["Vary"] = "Accept, Accept-Encoding"
    if gzipped:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    if request.app[_WRITER].closed:
        return _fail(503, "shutting down", retry_after=RETRY_AFTER_UNAVAILABLE_S)
    return web.json_response({"status": "ready"})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[OPENAPI])


async def get_autonomy(request: web.Request) -> web.StreamResponse:
    agent, flow = request.query.get("agent"), request.query.get("flow")
    if not agent or not flow:
        return _fail(400, "agent and flow are required query parameters", "agent" if not agent else "flow")
    specs = {s.agent: s for s in request.app[SPECS]}
    if agent not in specs:
        return _fail(404, f"unknown agent {agent!r}; this exporter serves: {', '.join(specs)}", "agent")
    if flow not in specs[agent].flows:
        return _fail(404, f"unknown flow {flow!r}; {agent} has: {', '.join(specs[agent].flows)}", "flow")
    return web.json_response(await request.app[AUTONOMY].state(agent, flow))


async def post_override(request: web.Request) -> web.StreamResponse:
    """A release-gate override (`exporter.overrides`): counted in agent_slo_release_overrides_total,
    who and why logged as one JSON line; a body with any wrong field is a 400 naming each, uncounted."""
    raw = await read_body(request, request.app[CONFIG], request.app[_READING])
    if isinstance(raw, IngestResult):
        return _json(raw)
    try:
        override = parse_override(orjson.loads(raw), {s.agent: s for s in request.app[SPECS]})
    except orjson.JSONDecodeError as exc:
        return _fail(400, "the body is not JSON", problem=str(exc))
    except OverrideError as exc:
        detail = [{"index": None, "field": field, "problem": problem} for field, problem in exc.problems]
        return _json(error(400, "not a release-gate override", detail))
    ingestor = request.app[INGESTOR]
    try:  # off the event loop: the count commits to the exporter's database like a batch does
        await asyncio.get_running_loop().run_in_executor(
            None, ingestor.record_override, override.agent, override.flow
        )
    except Exception as exc:
        log.error("override not recorded: %s", exc)
        return _fail(503, "could not store the override; retry", retry_after=RETRY_AFTER_UNAVAILABLE_S)
    log.warning("%s", orjson.dumps(override.log_record()).decode())
    body = {"agent": override.agent, "flow": override.flow, "recorded": True}
    return web.json_response(body, status=201)


async def _cleanup(app: web.Application) -> None:
    await app[AUTONOMY].close()
    await app[_WRITER].close()
    app[INGESTOR].close()


def create_app(specs: list[Spec], config: ExporterConfig) -> web.Application:
    """The exporter app for these specs, with the feedback wing's routes (sessions, review, datasets)."""
    app = web.Application(middlewares=[_errors, _programs_only, _auth], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[SPECS] = list(specs)
    app[INGESTOR] = Ingestor(list(specs), config)
    app[AUTONOMY] = AutonomyReader(list(specs), config)
    app[_WRITER] = Writer(app[INGESTOR], config.queue_timeout_s)
    app[_PENDING] = [0]
    app[_READING] = [0]
    app.router.add_post("/v1/events", post_events)
    # The feedback wing: its judges' verdicts come back through the ingest like any other events, and
    # conversations assembled from traces go to its judges like POST /v1/sessions.
    wing = feedback.setup(app, specs, app[INGESTOR], exporter_db=config.db_path)
    receiver = OtlpReceiver(app[INGESTOR], list(specs), on_session=wing.submit)
    otlp = OtlpRoutes(receiver, config)  # OpenTelemetry GenAI spans
    app.router.add_post("/v1/traces", otlp.post_traces)
    app.router.add_post("/v1/logs", otlp.post_logs)
    app.router.add_get("/v1/autonomy", get_autonomy)
    app.router.add_post(OVERRIDES_PATH, post_override)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    app[OPENAPI] = document(wing.paths)
    app.on_cleanup.append(_cleanup)
    return app
