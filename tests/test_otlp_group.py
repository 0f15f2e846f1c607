"""Group commit of the OTLP fast path: requests the C++ mapper read are counted on the event loop, the
ones read meanwhile together in one transaction (`OtlpRoutes._count_queued`, `OtlpReceiver.count_fast`).

A group counts exactly what its requests would count one by one: a request with a trace an earlier
request of the group holds (a retry sent twice at once) is left to the Python mapping, which finds
its spans counted; a commit that fails counts none of the group and leaves no key behind, so the
sender's retry counts once; and the loop never waits on the trace memory another request holds.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentslo import names
from agentslo.exporter import wire
from agentslo.exporter.app import INGESTOR, create_app
from agentslo.exporter.config import ExporterConfig
from agentslo.exporter.otlp import receiver as receiver_module
from agentslo.exporter.otlp import rows
from agentslo.exporter.otlp.receiver import OtlpReceiver, counts
from agentslo.spec import load_spec
from benchmarks.exporter_common import EXAMPLE
from benchmarks.otlp_ingest import bodies, template
from tests.test_otlp_mapper import post, receiver, series

pytestmark = pytest.mark.skipif(
    receiver_module.Mapper is None or rows.PURE or wire.SCANNER is None,
    reason="the C++ mapper or the events scanner is not built, or AGENT_SLO_PURE_PYTHON=1",
)
PB = {"Content-Type": "application/x-protobuf"}


def one_by_one(requests: list[bytes]) -> OtlpReceiver:
    """A receiver that was sent the requests one after another (the reference)."""
    otlp = receiver([load_spec(EXAMPLE)])
    for body in requests:
        post(otlp, body)
    return otlp


def assert_same(got: dict[Any, list[float]], want: dict[Any, list[float]]) -> None:
    """The same series with the same values; sums of a group are added in another order than one by
    one, so they may differ in the last bits (as for `/v1/events`' group commit)."""
    assert got.keys() == want.keys()
    for key, values in want.items():
        assert got[key] == pytest.approx(values, rel=1e-12), key


def test_a_group_counts_what_its_requests_count_one_by_one(tmp_path: Path) -> None:
    first, second, third = bodies(template(50), 3, seed=21)
    requests = [first, second, first, third, second]  # two retries sent while the first tries were in flight
    otlp = receiver([load_spec(EXAMPLE)], db=tmp_path / "x.db")
    group = [otlp.map_fast(body) for body in requests]
    assert all(fast is not None for fast in group)
    replies = otlp.count_fast(group)  # type: ignore[arg-type]
    assert replies is not None
    assert replies[0] == replies[1] == replies[3] == ExportTraceServiceResponse()
    assert replies[2] is None and replies[4] is None  # left to the Python mapping...
    for i in (2, 4):
        reply = otlp.traces(rows.read_body(requests[i], otlp.wanted))  # ...which finds them counted
        assert reply == ExportTraceServiceResponse()
    assert_same(series(otlp), series(one_by_one(requests)))
    assert counts(otlp.ingestor.store, "traces")["duplicate"] == 100
    assert otlp.ingestor.db is not None
    assert len(list(otlp.ingestor.db.spans())) == 1  # one transaction: one row of span keys


def test_a_failed_group_commit_counts_nothing_and_the_retries_count_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = bodies(template(50), 3, seed=22)
    otlp = receiver([load_spec(EXAMPLE)], db=tmp_path / "x.db")
    before = series(otlp)
    db = otlp.ingestor.db
    assert db is not None

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(db, "commit", broken)
        replies = otlp.count_fast([otlp.map_fast(body) for body in requests])  # type: ignore[misc]
    assert replies is not None and len(replies) == 3
    assert all(isinstance(reply, Exception) for reply in replies)  # each answered 503
    assert series(otlp) == before and len(otlp.seen) == 0 and not list(db.spans())
    assert not otlp.memory.unread and not len(otlp.memory.unread_traces)  # held for the group, let go
    for body in requests:  # the sender's retries (the fast path again: their traces are not known)
        fast = otlp.map_fast(body)
        assert fast is not None and otlp.traces_fast(fast) == ExportTraceServiceResponse()
    assert series(otlp) == series(one_by_one(requests))  # one by one, as the reference


def test_a_lone_request_whose_commit_fails_raises_and_counts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    otlp = receiver([load_spec(EXAMPLE)], db=tmp_path / "x.db")
    before = series(otlp)
    assert otlp.ingestor.db is not None
    monkeypatch.setattr(otlp.ingestor.db, "commit", lambda *a, **k: (_ for _ in ()).throw(OSError("gone")))
    fast = otlp.map_fast(bodies(template(50), 1, seed=23)[0])
    assert fast is not None
    with pytest.raises(OSError, match="gone"):
        otlp.traces_fast(fast)
    assert series(otlp) == before and len(otlp.seen) == 0
    assert not otlp.memory.unread and not len(otlp.memory.unread_traces)


def test_the_loop_does_not_wait_for_a_trace_memory_another_request_holds() -> None:
    otlp = receiver([load_spec(EXAMPLE)])
    fast = otlp.map_fast(bodies(template(50), 1, seed=24)[0])
    assert fast is not None
    with otlp._memory_lock:  # as while a worker maps a request in Python
        assert otlp.count_fast([fast], wait=False) is None
    replies = otlp.count_fast([fast], wait=False)
    assert replies is not None and replies[0] == ExportTraceServiceResponse()


async def test_concurrent_requests_and_their_retries_count_once_over_http(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    spec = load_spec(EXAMPLE)
    app = create_app([spec], ExporterConfig(db_path=str(tmp_path / "x.db")))
    client = await aiohttp_client(app)
    requests = bodies(template(100), 8, seed=25)
    sizes: list[int] = []
    routes_receiver = _receiver(app)
    count_fast = routes_receiver.count_fast

    def recording(group: list[Any], wait: bool = True) -> Any:
        sizes.append(len(group))
        return count_fast(group, wait)

    routes_receiver.count_fast = recording  # type: ignore[method-assign]

    async def send(body: bytes) -> int:
        async with client.post("/v1/traces", data=body, headers=PB) as r:
            await r.read()
            return r.status

    # each request twice at once (a sender retrying), a holder of the trace memory for part of it
    held = threading.Event()

    def hold() -> None:
        with routes_receiver._memory_lock:
            held.set()
            threading.Event().wait(0.2)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    statuses = await asyncio.wait_for(asyncio.gather(*(send(b) for b in requests + requests)), 60)
    holder.join(5)
    assert statuses == [200] * 16
    assert sum(sizes) >= 8 and max(sizes) > 1, sizes  # read meanwhile: counted together
    reference = one_by_one(requests)
    own = (names.OTLP_ITEMS_TOTAL, names.INGEST_EVENTS_TOTAL)  # the app's health counters: its own story
    assert_same(
        *({k: v for k, v in series(r).items() if k[0] not in own} for r in (routes_receiver, reference))
    )
    result = counts(app[INGESTOR].store, "traces")
    assert result["counted"] == counts(reference.ingestor.store, "traces")["counted"]
    assert result["duplicate"] == 800


def _receiver(app: Any) -> OtlpReceiver:
    """The app's OTLP receiver, as its `/v1/traces` route holds it."""
    route = next(r for r in app.router.routes() if r.resource.canonical == "/v1/traces")
    return route.handler.__self__.receiver  # type: ignore[no-any-return]
