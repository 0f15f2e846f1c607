"""/metrics beyond the store: the exporter's own build info and process metrics in both formats, and
gzip when the scraper accepts it (the store's own series are proven in test_exporter_classify)."""

from __future__ import annotations

import gzip
import platform
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from agentslo import __version__, names
from agentslo.exporter.app import create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.exposition import accepts_gzip, render
from agentslo.exporter.ingest import Ingestor
from agentslo.spec import parse_spec

SPEC = """
version: agent-slo/v1
agent: bot
owners: {team: {team: t}}
flows: {refund: {risk: billing}}
slos:
  conn: {sli: {connection: {}}, objective: 99, owner: team}
"""
PROCESS_METRICS = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
}


@pytest.fixture
def ingestor() -> Iterator[Ingestor]:
    ingestor = Ingestor([parse_spec(SPEC)], ExporterConfig())
    yield ingestor
    ingestor.close()


def samples(text: str, openmetrics: bool = False) -> dict[str, list[Any]]:
    parse = om_families if openmetrics else text_string_to_metric_families
    out: dict[str, list[Any]] = {}
    for family in parse(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_exporter_says_which_release_it_runs(ingestor: Ingestor, openmetrics: bool) -> None:
    got = samples(render(ingestor.store, openmetrics).decode(), openmetrics)
    [build] = got[names.EXPORTER_BUILD_INFO]
    assert build.labels == {
        names.L_VERSION: __version__,
        names.L_PYTHON_VERSION: platform.python_version(),
    }
    assert build.value == 1.0


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_standard_process_metrics_follow_the_store_without_created_series(
    ingestor: Ingestor, openmetrics: bool
) -> None:
    text = render(ingestor.store, openmetrics).decode()
    got = samples(text, openmetrics)  # the OpenMetrics parser also proves the one "# EOF" is last
    assert set(got) >= PROCESS_METRICS
    assert got["process_resident_memory_bytes"][0].value > 0
    assert names.EVENTS_TOTAL in got
    assert not [name for name in got if name.endswith("_created")]
    assert text.count("# EOF") == (1 if openmetrics else 0)


def test_gzipped_is_the_same_exposition_compressed(ingestor: Ingestor) -> None:
    plain = render(ingestor.store)
    packed = render(ingestor.store, gzipped=True)
    assert packed[:2] == b"\x1f\x8b" and len(packed) < len(plain)

    def steady(body: bytes) -> list[bytes]:  # process metrics move between two renders
        return [ln for ln in body.splitlines() if not ln.startswith(b"process_")]

    assert steady(gzip.decompress(packed)) == steady(plain)


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip", True),  # Prometheus
        ("gzip, deflate, br", True),
        ("identity", False),
        ("", False),
        ("deflate;q=1, gzip;q=0", False),
        ("*", True),
        ("*;q=0.5, gzip;q=0", False),
        ("GZIP;Q=0.2", True),
        ("x-gzip", True),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(header: str, gzipped: bool) -> None:
    assert accepts_gzip(header) is gzipped


@pytest.fixture
async def client(aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AGENT_SLO_JUDGE_PROCESS", "0")
    return await aiohttp_client(create_app([parse_spec(SPEC)], ExporterConfig()))


async def test_metrics_are_gzipped_only_for_scrapers_that_accept_it(client: Any) -> None:
    resp = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    raw = await resp.read()
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in resp.headers["Vary"]
    assert names.EVENTS_TOTAL in gzip.decompress(raw).decode()

    resp = await client.get("/metrics", headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    assert "Content-Encoding" not in resp.headers
    assert names.EVENTS_TOTAL in await resp.text()


async def test_openmetrics_is_gzipped_too(client: Any) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}
    resp = await client.get("/metrics", headers=headers, auto_decompress=False)
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await resp.read()).endswith(b"# EOF\n")
