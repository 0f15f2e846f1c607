"""The prober's loop and its delivery: cycles on the interval with jitter, retries that never double-count."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agentslo.scenario import load_scenarios
from agentslo.spec import load_spec, parse_spec
from agentslo.synthetic.records import ScenarioResult
from agentslo.synthetic.runner import run_cycle
from agentslo.synthetic.scheduler import Job, run_forever
from agentslo.synthetic.sinks import CallableSink, HttpSink, SinkError
from agentslo.synthetic.targets import make_target
from tests.doubles.cx_agent import running_fake_agent

ROOT = Path(__file__).resolve().parent.parent
CX = ROOT / "examples" / "cx-support.slo.yaml"


def _fast_spec(tmp_path: Path, interval: str, jitter: float):
    text = CX.read_text().replace("interval: 5m", f"interval: {interval}\n  jitter: {jitter}")
    path = tmp_path / "cx.slo.yaml"
    path.write_text(text)
    # a copy: a spec's scenario globs must stay inside its folder, which a symlink leaves
    shutil.copytree(ROOT / "examples" / "scenarios", tmp_path / "scenarios")
    spec = parse_spec(text, str(path))
    return spec, [s for s in load_scenarios(spec) if s.name.startswith("order-status")]


async def test_cycles_run_on_the_interval_until_stopped(tmp_path: Path) -> None:
    spec, scenarios = _fast_spec(tmp_path, "1s", 0.0)
    cycles: list[float] = []
    events: list[dict[str, Any]] = []
    stop = asyncio.Event()

    def on_cycle(results: list[ScenarioResult]) -> None:
        cycles.append(time.monotonic())
        assert all(r.passed for r in results)

    async with running_fake_agent("good") as agent:
        target = make_target(spec.synthetic.target, agent.base_url)
        task = asyncio.create_task(
            run_forever([Job(spec, scenarios, target)], CallableSink(events.extend), stop, on_cycle=on_cycle)
        )
        await asyncio.sleep(2.5)
        stop.set()
        await asyncio.wait_for(task, 5)
        await target.aclose()
    assert len(cycles) == 3, cycles
    gaps = [b - a for a, b in itertools.pairwise(cycles)]
    assert all(0.7 < g < 1.3 for g in gaps), gaps  # back to back would be ~0.05 s apart
    assert len(events) == 3 * len(scenarios)


async def test_jitter_spreads_scenario_starts(tmp_path: Path) -> None:
    spec, scenarios = _fast_spec(tmp_path, "1s", 0.0)
    many = [s.model_copy(update={"name": f"{s.name}-{i}"}) for i in range(8) for s in scenarios]
    async with running_fake_agent("good") as agent:
        await run_cycle(spec, many, target_url=agent.base_url, jitter_s=0.6, concurrency=50)
    first: dict[str, float] = {}
    for r in agent.requests:
        first.setdefault(r["headers"]["x-agent-slo-synthetic"], r["at"])
    assert len(first) == 16 and max(first.values()) - min(first.values()) > 0.2


async def _exporter(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/events", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_http_sink_retries_on_503_with_the_same_idempotency_key() -> None:
    seen: list[tuple[str, str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            (
                request.headers["Idempotency-Key"],
                request.headers.get("Authorization", ""),
                await request.json(),
            )
        )
        if len(seen) == 1:
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "0.1"})
        return web.json_response({"accepted": 1})

    runner, url = await _exporter(handler)
    sink = HttpSink(url, "tok", backoff_s=0.01)
    try:
        await sink.send([{"type": "synthetic", "scenario": "s"}])
    finally:
        await sink.aclose()
        await runner.cleanup()
    assert len(seen) == 2 and seen[0][0] == seen[1][0] and seen[0][1] == "Bearer tok"
    assert seen[1][2] == [{"type": "synthetic", "scenario": "s"}] and sink.sent == 1


async def test_http_sink_reports_a_refusal_with_the_exporters_words() -> None:
    async def handler(request: web.Request) -> web.Response:
        detail = [{"index": 0, "field": "flow", "problem": "unknown flow"}]
        return web.json_response({"error": "invalid batch", "detail": detail}, status=422)

    runner, url = await _exporter(handler)
    sink = HttpSink(url, backoff_s=0.01)
    try:
        with pytest.raises(SinkError, match=r"refused the results: HTTP 422: .*unknown flow"):
            await sink.send([{"type": "synthetic"}])
    finally:
        await sink.aclose()
        await runner.cleanup()


def test_spec_without_a_target_cannot_cycle() -> None:
    spec = load_spec(CX).model_copy(update={"synthetic": None})
    with pytest.raises(ValueError, match=r"has no synthetic\.target"):
        asyncio.run(run_cycle(spec, []))


async def test_prober_runs_inside_an_aiohttp_app_and_stops_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentslo.synthetic.inprocess import prober_context

    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ):  # the llm-rubric scenario must not reach a real provider
        monkeypatch.delenv(name, raising=False)

    spec, _ = _fast_spec(tmp_path, "1s", 0.0)
    events: list[dict[str, Any]] = []
    async with running_fake_agent("good") as agent:
        app = web.Application()
        app.cleanup_ctx.append(prober_context([spec], events.extend, target_url=agent.base_url))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            for _ in range(50):
                await asyncio.sleep(0.1)
                if len(events) >= 10:  # two cycles of the five cx-support scenarios
                    break
        finally:
            await runner.cleanup()
        count = len(events)
        await asyncio.sleep(1.2)
    assert count >= 10 and len(events) == count  # nothing runs after the app stopped
    assert {e["scenario"] for e in events} >= {"order-status-shipped", "refund-delivered-order"}
