"""The one Prometheus query client: answers from a real Prometheus (Debian package), both transports,
and each failure it names, from a local aiohttp server playing a broken Prometheus."""

from __future__ import annotations

import asyncio
import base64
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from agentslo.prometheus import (
    PrometheusBadResponse,
    PrometheusClient,
    PrometheusError,
    PrometheusHTTPError,
    PrometheusQueryError,
    PrometheusUnreachable,
    Sample,
)

RECORDED = "agent_slo_test:answer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def both(client: PrometheusClient, promql: str, at: float | None = None) -> list[list[Sample]]:
    """The same query through the blocking transport (in a thread, so a server on this loop can answer)
    and the asynchronous one."""
    try:
        return [await asyncio.to_thread(client.query, promql, at), await client.aquery(promql, at)]
    finally:
        await client.aclose()


async def both_fail(client: PrometheusClient, promql: str = "up") -> list[PrometheusError]:
    """The exception each transport raises for the same query."""
    errors = []
    for call in (lambda: asyncio.to_thread(client.query, promql), lambda: client.aquery(promql)):
        with pytest.raises(PrometheusError) as info:
            await call()
        errors.append(info.value)
    await client.aclose()
    assert type(errors[0]) is type(errors[1]), errors
    return errors


# --- a real Prometheus ---


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("prometheus") is None:
        pytest.skip("needs the prometheus binary")
    tmp: Path = tmp_path_factory.mktemp("prom")
    rules = {
        "groups": [
            {
                "name": "client-test",
                "interval": "1s",
                "rules": [
                    {"record": RECORDED, "expr": "vector(42)", "labels": {"flow": "refund", "replica": "a"}},
                    {"record": RECORDED, "expr": "vector(NaN)", "labels": {"flow": "faq", "replica": "a"}},
                ],
            }
        ]
    }
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {"global": {"evaluation_interval": "1s"}, "rule_files": [str(tmp / "rules.yml")]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        client, deadline = PrometheusClient(url, timeout=2), time.monotonic() + 30
        while True:
            try:
                if len(client.query(RECORDED)) == 2:
                    break
            except PrometheusUnreachable:
                pass
            assert time.monotonic() < deadline, "Prometheus did not evaluate the fixture rules"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
async def test_a_vector_becomes_labelled_samples_through_both_transports(prometheus: str) -> None:
    for samples in await both(PrometheusClient(prometheus), f'{RECORDED}{{flow="refund"}}'):
        assert len(samples) == 1
        labels, value, timestamp = samples[0]
        assert labels == {"__name__": RECORDED, "flow": "refund", "replica": "a"}
        assert value == 42.0
        assert abs(timestamp - time.time()) < 60


@pytest.mark.slow
async def test_nan_stays_nan_and_the_caller_decides(prometheus: str) -> None:
    for samples in await both(PrometheusClient(prometheus), f'{RECORDED}{{flow="faq"}}'):
        assert math.isnan(samples[0].value)


@pytest.mark.slow
async def test_a_scalar_is_one_sample_without_labels_evaluated_at_the_time_asked(prometheus: str) -> None:
    at = 1_700_000_000.5
    for samples in await both(PrometheusClient(prometheus), "time() + 1", at=at):
        assert samples == [Sample({}, at + 1, at)]


@pytest.mark.slow
async def test_aggregations_with_quotes_and_plus_signs_survive_url_encoding(prometheus: str) -> None:
    promql = f'max by (flow) ({RECORDED}{{flow=~"ref.+"}}) + 0'
    for samples in await both(PrometheusClient(prometheus), promql):
        assert [(dict(s.labels), s.value) for s in samples] == [({"flow": "refund"}, 42.0)]


@pytest.mark.slow
async def test_a_promql_syntax_error_is_a_query_error_naming_the_query(prometheus: str) -> None:
    for error in await both_fail(PrometheusClient(prometheus), "sum(up"):
        assert isinstance(error, PrometheusQueryError)
        assert error.error_type == "bad_data"
        assert error.query == "sum(up" and error.url == prometheus
        assert str(error).startswith(f"Prometheus at {prometheus} refused 'sum(up' (HTTP 400, bad_data)")


@pytest.mark.slow
async def test_a_range_vector_is_refused_as_not_an_instant_result(prometheus: str) -> None:
    for error in await both_fail(PrometheusClient(prometheus), f"{RECORDED}[1m]"):
        assert isinstance(error, PrometheusBadResponse)
        assert "a matrix result, where an instant vector or a scalar was expected" in str(error)


# --- failures, from a local stand-in ---


async def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for error in await both_fail(PrometheusClient(url, timeout=2)):
        assert isinstance(error, PrometheusUnreachable)
        assert str(error).startswith(f"Prometheus at {url} could not be reached: ")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def stand_in(aiohttp_server: Any) -> Callable[[Handler], Awaitable[str]]:
    """A Prometheus stand-in answering /prefix/api/v1/query with `handler`; returns its base URL."""

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/prefix/api/v1/query", handler)
        server = await aiohttp_server(app)
        return f"http://127.0.0.1:{server.port}/prefix/"

    return start


async def test_an_error_status_without_an_api_body_is_an_http_error(stand_in: Any) -> None:
    async def gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    url = await stand_in(gateway)
    for error in await both_fail(PrometheusClient(url)):
        assert isinstance(error, PrometheusHTTPError) and error.status == 502
        assert "answered HTTP 502 to 'up': <html>Bad Gateway</html>" in str(error)


async def test_an_api_error_body_is_a_query_error_whatever_the_status(stand_in: Any) -> None:
    async def overloaded(request: web.Request) -> web.Response:
        body = {
            "status": "error",
            "errorType": "timeout",
            "error": "query timed out in expression evaluation",
        }
        return web.json_response(body, status=503)

    for error in await both_fail(PrometheusClient(await stand_in(overloaded))):
        assert isinstance(error, PrometheusQueryError) and error.error_type == "timeout"
        assert "(HTTP 503, timeout): query timed out in expression evaluation" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>login</html>",  # a proxy's page
        b'{"status": "success", "data": {"resultType": "vec',  # cut off
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}',  # no value
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}',
        b'["not", "an", "object"]',
    ],
    ids=["html", "truncated", "no-value", "not-a-number", "not-an-object"],
)
async def test_an_answer_that_is_not_the_api_is_a_bad_response(stand_in: Any, body: bytes) -> None:
    async def weird(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    for error in await both_fail(PrometheusClient(await stand_in(weird))):
        assert isinstance(error, PrometheusBadResponse), error


async def test_a_slow_answer_is_unreachable_after_the_timeout(stand_in: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    started = time.monotonic()
    for error in await both_fail(PrometheusClient(await stand_in(slow), timeout=0.3)):
        assert isinstance(error, PrometheusUnreachable)
        assert "could not be reached" in str(error)
    assert time.monotonic() - started < 1.9  # neither transport waited for the answer


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"token": "s3cret"}, "Bearer s3cret"),
        ({"basic_auth": ("alice", "pa:ss")}, "Basic " + base64.b64encode(b"alice:pa:ss").decode()),
        ({}, None),
    ],
    ids=["bearer", "basic", "none"],
)
async def test_both_transports_send_the_same_request(
    stand_in: Any, credentials: dict[str, Any], expected: str | None
) -> None:
    seen: list[tuple[str | None, dict[str, str], str]] = []

    async def recording(request: web.Request) -> web.Response:
        seen.append(
            (request.headers.get("Authorization"), dict(request.query), request.headers["User-Agent"])
        )
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    client = PrometheusClient(await stand_in(recording), **credentials)
    assert await both(client, 'up{job="a b"} + 1', at=12.5) == [[], []]
    assert seen[0] == seen[1]
    auth, query, agent = seen[0]
    assert auth == expected
    assert query == {"query": 'up{job="a b"} + 1', "time": "12.5"}
    assert agent.startswith("agent-slo/")


def test_the_query_url_keeps_a_path_prefix() -> None:
    client = PrometheusClient("https://example.test/prometheus/")
    assert client.query_url("up", at=1.0) == "https://example.test/prometheus/api/v1/query?query=up&time=1.0"
