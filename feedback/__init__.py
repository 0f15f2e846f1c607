"""The feedback wing: sessions in, judges' verdicts out, humans' labels back into the judges.

Agents post whole sessions (`POST /v1/sessions`); the judging pipeline runs rule judges on every
session and LLM judges on their head sample, and hands each verdict back as a `judge` event; the
sessions some SLI or judge marked bad are stored (redacted) for the top-contributors view and the
review queue; human labels become calibration and regression datasets and a judge's agreement ratio.

The wing is mounted by one call, which takes everything it needs as arguments (it never reads the
host app's keys) and returns the OpenAPI path items of the routes it added, and `submit`, which
takes a session document from any thread (the exporter's OTLP ingest hands over conversations
assembled from traces) and queues it exactly as `POST /v1/sessions` would:

    from aiohttp import web
    from agentslo import feedback
    from agentslo.spec import load_spec

    class Printer:  # a `Sink`: where verdicts go (the exporter passes its ingest)
        def apply(self, events, *, partial=False): print(events)
        def record_judge_call(self, agent, judge, judge_version, outcome, cost_usd): pass
        def set_judge_agreement(self, agent, judge, judge_version, ratio): pass

    app = web.Application()
    paths, submit = feedback.setup(app, [load_spec("examples/cx-support.slo.yaml")], Printer())
    web.run_app(app, port=9121)  # the exporter instead merges `paths` into its /openapi.json

Where things live: `api` (the routes) and `openapi` (their OpenAPI description), `config` (settings,
`AGENT_SLO_SESSIONS_*`), `pipeline` (the judging queues), `remote` (LLM judge calls in a child
process), `sampling` (deterministic head samples), `session` (the session document and what it says
about the SLOs), `store` (the SQLite session store and review queue), `redact` (personal data and
secrets out before storage; their patterns in `_detect`), `datasets` (calibration and regression
sets), `calibrate` (`agent-slo calibrate`).
The judges themselves (`run_judge`, rule and LLM judges) are the core's `agentslo.judges`, shared with
the prober's `llm-rubric`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import openai
from aiohttp import web

from agentslo.feedback.api import PIPELINE, accept_document, add_routes
from agentslo.feedback.config import ENV, SessionsConfig
from agentslo.feedback.openapi import OPENAPI_PATHS
from agentslo.feedback.pipeline import Pipeline, PipelineConfig, Sink
from agentslo.feedback.redact import Redactor
from agentslo.feedback.store import SessionStore
from agentslo.spec import Spec

SESSIONS_DB = "sessions.db"  # the store's file name when it sits next to the exporter's database


class Mounted(NamedTuple):
    """What `setup` gives the host app."""

    paths: dict[str, Any]  # the OpenAPI path items of the routes added
    submit: Callable[[dict[str, Any]], None]  # a session document, from any thread (dropped before start)


def setup(
    app: web.Application,
    specs: Iterable[Spec],
    sink: Sink,
    *,
    config: SessionsConfig | None = None,
    exporter_db: str | None = None,
    client: openai.AsyncOpenAI | None = None,
) -> Mounted:
    """Add the sessions, review and dataset routes to `app`; the pipeline starts and stops with it.

    `sink` takes the verdicts; `config` defaults to `SessionsConfig.from_env()`, read when the app
    starts; without a `db_path` the store is `sessions.db` next to `exporter_db`, else in memory.
    `client` is an `openai.AsyncOpenAI` for every LLM judge (tests). Returns the OpenAPI path items
    of the routes added and a thread-safe `submit` for session documents.
    """
    add_routes(app.router)
    by_agent = {s.agent: s for s in specs}
    running: list[tuple[asyncio.AbstractEventLoop, Pipeline]] = []  # set while the app runs

    async def start(app: web.Application) -> None:
        cfg = config or SessionsConfig.from_env()
        path = cfg.db_path or (
            os.path.join(os.path.dirname(os.path.abspath(exporter_db)), SESSIONS_DB)
            if exporter_db
            else ":memory:"
        )
        store = SessionStore(
            path,
            redactor=Redactor.parse(cfg.redact),
            retention_s=cfg.retention_s,
            labelled_retention_s=cfg.labelled_retention_s,
            max_bytes=cfg.max_bytes,
        )
        pipeline = Pipeline(by_agent, sink, store, cfg.pipeline, client=client)
        app[PIPELINE] = pipeline
        await pipeline.start()
        running.append((asyncio.get_running_loop(), pipeline))

    async def stop(app: web.Application) -> None:
        running.clear()
        if PIPELINE in app:
            await app[PIPELINE].stop()

    def submit(document: dict[str, Any]) -> None:
        if running:
            loop, pipeline = running[0]
            loop.call_soon_threadsafe(accept_document, pipeline, document)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return Mounted(dict(OPENAPI_PATHS), submit)


__all__ = ["ENV", "PIPELINE", "Mounted", "Pipeline", "PipelineConfig", "SessionsConfig", "Sink", "setup"]
