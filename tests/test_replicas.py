"""Three exporter replicas behind the shipped nginx config, one crashing mid-load: every batch the
client saw acknowledged is counted exactly once in the sum over replicas, as Prometheus and the
replicas' own /metrics both say.

The client sends batches of task events, each with its own Idempotency-Key, and retries anything
that is not a 200 (a 502 while the key's owner is down, a cut connection, a 409 while the first
attempt is in flight) with the same key and body. One replica is SIGKILLed while batches are in
flight and restarted on its port and SQLite file. The shipped config never passes a keyed write to
another replica, so a batch the dead replica committed but never answered is replayed by it once it
is back (`Idempotency-Replayed: true`), never counted again elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from agentslo import names
from agentslo.bundle import configs, nginx
from agentslo.demo.servers import Prometheus, Server, find_binary, http_get
from agentslo.spec import load_spec
from tests.doubles.replicas import ExporterReplicas, nginx_router

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "cx-support.slo.yaml"
SLO = "task-success"
BATCHES, BATCH_EVENTS, SENDERS = 480, 50, 4
KILL_AFTER = 150  # acknowledged batches before the crash
DOWN_S = 0.5  # the replica stays dead this long before its restart begins
RETRY_PAUSE_S = 0.05
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    find_binary("nginx", "/usr/sbin/nginx") is None or find_binary("prometheus") is None,
    reason="needs nginx and prometheus (setup.sh installs both)",
)


@dataclass
class Stack:
    replicas: ExporterReplicas
    router: Server
    prometheus: Server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("replicas")
    with ExporterReplicas(SPEC, work / "exporters", 3) as replicas:
        config = configs.prometheus_config(
            [load_spec(SPEC)],
            rule_files=[],
            exporter_targets=replicas.addresses,
            alertmanager_targets=[],
            scrape_interval="1s",
        )
        with (
            nginx_router(replicas.addresses, work) as router,
            Prometheus.start(work / "prom", config) as prom,
        ):
            yield Stack(replicas, router, prom)


@dataclass
class Ledger:
    """What the client saw: per key, the replicas that answered each attempt and how."""

    attempts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # key -> (status, replica)
    acked: dict[str, str] = field(default_factory=dict)  # key -> replica that answered 200
    replayed: set[str] = field(default_factory=set)
    done: int = 0


def _batch(i: int) -> bytes:
    flow = ("refund", "order-status", "password-reset")[i % 3]
    outcomes = ("success", "failure")
    return json.dumps(
        [
            {"type": "task", "agent": "cx-support", "flow": flow, "outcome": outcomes[j % 2]}
            for j in range(BATCH_EVENTS)
        ]
    ).encode()


async def _send(url: str, ledger: Ledger) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(BATCHES):
        queue.put_nowait(i)
    deadline = time.monotonic() + DEADLINE_S

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            key, body = str(uuid.uuid4()), _batch(i)
            attempts = ledger.attempts.setdefault(key, [])
            while True:
                assert time.monotonic() < deadline, f"batch {i} never acknowledged: {attempts}"
                headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
                try:
                    async with session.post(f"{url}/v1/events", data=body, headers=headers) as r:
                        await r.read()
                        attempts.append((r.status, r.headers.get(nginx.REPLICA_HEADER, "")))
                        if r.status == 200:
                            ledger.acked[key] = attempts[-1][1]
                            if r.headers.get("Idempotency-Replayed") == "true":
                                ledger.replayed.add(key)
                            break
                except aiohttp.ClientError:
                    attempts.append((0, ""))  # the connection to nginx itself failed
                await asyncio.sleep(RETRY_PAUSE_S)
            ledger.done += 1
            await asyncio.sleep(0.005)  # a steady stream, so the crash lands mid-load

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))


def _crash_mid_load(stack: Stack, ledger: Ledger, crashed: threading.Event) -> None:
    while ledger.done < KILL_AFTER:
        time.sleep(0.005)
    stack.replicas[1].kill()
    crashed.set()
    time.sleep(DOWN_S)
    stack.replicas[1].start()


def _direct_sum(stack: Stack) -> float:
    total = 0.0
    for replica in stack.replicas.replicas:
        status, body = http_get(f"{replica.url}/metrics")
        assert status == 200
        for family in text_string_to_metric_families(body.decode()):
            if family.name + "_total" == names.EVENTS_TOTAL or family.name == names.EVENTS_TOTAL:
                total += sum(
                    s.value
                    for s in family.samples
                    if s.name.endswith("_total") and s.labels.get("slo") == SLO
                )
    return total


def _prometheus_sum(prometheus: Server) -> float | None:
    query = urllib.parse.quote(f'sum({names.EVENTS_TOTAL}{{slo="{SLO}"}}) and on() (count(up == 1) == 3)')
    status, body = http_get(f"{prometheus.url}/api/v1/query?query={query}")
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


def test_a_replica_crash_mid_load_counts_every_acknowledged_event_exactly_once(stack: Stack) -> None:
    ledger, crashed = Ledger(), threading.Event()
    before = _direct_sum(stack)
    killer = threading.Thread(target=_crash_mid_load, args=(stack, ledger, crashed), daemon=True)
    killer.start()
    asyncio.run(_send(stack.router.url, ledger))
    killer.join(DEADLINE_S)
    assert crashed.is_set() and not killer.is_alive()

    acked_events = len(ledger.acked) * BATCH_EVENTS
    counted = _direct_sum(stack) - before
    retried = {k: a for k, a in ledger.attempts.items() if len(a) > 1}
    # a retry "moved" when an attempt of the key was answered by another replica than the one that acked
    moved = [k for k, a in retried.items() if any(rep and rep != ledger.acked[k] for _, rep in a)]
    statuses = Counter(s for a in retried.values() for s, _ in a[:-1])
    print(
        f"\nreplicas: {len(ledger.acked)} batches acknowledged ({acked_events} events), "
        f"{len(retried)} retried "
        f"(failed attempts by status {dict(statuses)}), {len(ledger.replayed)} answered by a replay, "
        f"{len(moved)} landed on another replica; counted {counted:.0f} "
        f"(double-counted {counted - acked_events:.0f})"
    )
    assert len(ledger.acked) == BATCHES
    assert retried, "the crash should have failed some attempts; it landed outside the load"
    assert moved == []
    assert counted == acked_events  # exactly once: none lost, none twice

    # Prometheus, scraping all three, agrees once it has scraped the restarted replica.
    deadline = time.monotonic() + 20
    while (seen := _prometheus_sum(stack.prometheus)) != before + acked_events:
        assert time.monotonic() < deadline, f"Prometheus sums {seen}, expected {before + acked_events}"
        time.sleep(0.5)


def test_a_batch_committed_but_unanswered_when_its_replica_dies_is_replayed_by_it_not_recounted(
    stack: Stack,
) -> None:
    # The client sends, the owner commits and answers, the answer is lost (the client never reads it)
    # and the owner crashes: the client only knows to retry with the same key.
    before = _direct_sum(stack)
    body = _batch(0)
    sent: dict[str, str] = {}

    async def send(key: str) -> tuple[int, str, bool]:
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.post(f"{stack.router.url}/v1/events", data=body, headers=headers) as r:
                await r.read()
                replayed = r.headers.get("Idempotency-Replayed") == "true"
                return r.status, r.headers.get(nginx.REPLICA_HEADER, ""), replayed

    for _ in range(12):
        key = str(uuid.uuid4())
        status, replica, _ = asyncio.run(send(key))
        assert status == 200
        sent[key] = replica
    victim = next(i for i, address in enumerate(stack.replicas.addresses) if address in sent.values())
    mine = [k for k, rep in sent.items() if rep == stack.replicas.addresses[victim]]
    stack.replicas[victim].kill()
    try:
        for key in mine:  # while the owner is down: refused, never passed to another replica
            status, replica, _ = asyncio.run(send(key))
            assert (status, replica) == (502, stack.replicas.addresses[victim])
    finally:
        stack.replicas[victim].start()
    for key in mine:
        assert asyncio.run(send(key)) == (200, stack.replicas.addresses[victim], True)
    assert _direct_sum(stack) - before == len(sent) * BATCH_EVENTS  # each batch once


def _failover(conf: str) -> str:
    """The design this config rules out: a write whose owner is down goes to the next replica."""
    assert "proxy_next_upstream off;" in conf and " max_fails=0;" in conf
    return conf.replace("proxy_next_upstream off;", "proxy_next_upstream error timeout;").replace(
        " max_fails=0;", " max_fails=1 fail_timeout=30s;"
    )


def test_failing_writes_over_to_another_replica_would_count_a_committed_batch_twice(
    stack: Stack, tmp_path: Path
) -> None:
    # The same crash under the rejected alternative: every committed-but-unanswered batch of the dead
    # replica is counted again by the replica its retry fails over to. This is what the shipped
    # config's `proxy_next_upstream off` + `max_fails=0` prevent (and what the tests above would catch).
    with nginx_router(stack.replicas.addresses, tmp_path, edit=_failover) as router:
        before = _direct_sum(stack)
        body = _batch(0)

        def send(key: str) -> tuple[int, str]:
            headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
            r = requests.post(f"{router.url}/v1/events", data=body, headers=headers, timeout=15)
            return r.status_code, r.headers.get(nginx.REPLICA_HEADER, "")

        sent = {key: send(key)[1] for key in (str(uuid.uuid4()) for _ in range(12))}
        victim = next(i for i, address in enumerate(stack.replicas.addresses) if address in sent.values())
        mine = [k for k, rep in sent.items() if rep == stack.replicas.addresses[victim]]
        stack.replicas[victim].kill()
        try:
            retried = [send(key) for key in mine]
        finally:
            stack.replicas[victim].start()
        assert all(status == 200 for status, _ in retried)
        # $upstream_addr lists every replica tried: the dead owner first, the one that answered last
        assert all(replica.split(", ")[-1] != stack.replicas.addresses[victim] for _, replica in retried)
        double = _direct_sum(stack) - before - len(sent) * BATCH_EVENTS
        print(f"\nfailover alternative: {len(mine)} retried batches moved, {double:.0f} events counted twice")
        assert double == len(mine) * BATCH_EVENTS
