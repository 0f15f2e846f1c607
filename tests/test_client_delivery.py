"""The client SDK's delivery guarantees: bounded, exactly once, retried politely, refused once, fork-safe.

The outage tests use a real exporter (`agent-slo serve` with a database, killed with SIGKILL and
restarted on the same port); the protocol tests use a scripted exporter that answers what they need
(a 503 with `Retry-After`, a lost answer, a 422, a 207, a 413).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agentslo_client import Client

from agentslo import names
from tests.doubles.sdk_backends import Answer, Exporter, ScriptedExporter, free_port

pytestmark = pytest.mark.timeout(120)
FAST = {"flush_interval_s": 0.02, "retry_max_s": 0.2}  # a test's patience, not production's


def connections(exporter: Exporter) -> float:
    return exporter.value(names.EVENTS_TOTAL, agent="bot", slo="connection")


def test_exporter_killed_and_restarted_under_load_loses_nothing_accepted_and_counts_drops(
    tmp_path: Path,
) -> None:
    exporter = Exporter(tmp_path).start()
    client = Client(exporter.url, agent="bot", flow="refund", max_queue=3_000, max_batch=200, **FAST)
    offered = 0
    worst_call_s = 0.0
    most_queued = 0

    def work(seconds: float, per_ms: int = 10) -> None:  # ~10,000 events/s from the agent's thread
        nonlocal offered, worst_call_s, most_queued
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(per_ms):
                start = time.perf_counter()
                client.record_connection(offered % 3 != 0)
                worst_call_s = max(worst_call_s, time.perf_counter() - start)
                offered += 1
            most_queued = max(most_queued, client.stats().queued)
            time.sleep(0.001)

    try:
        work(0.5)
        exporter.kill()  # SIGKILL mid-load: batches in flight get no answer, some were committed
        work(1.0)  # far more than the queue holds
        stats = client.stats()
        assert stats.queued == 3_000 and stats.dropped > 0
        exporter.start()  # same port, same database
        work(0.3)
        assert client.flush(30)
    finally:
        client.close(5)
        exporter.stop()
    stats = client.stats()
    assert most_queued <= 3_000 and stats.queued == 0 and stats.rejected == 0
    assert stats.delivered + stats.dropped == offered
    exporter.start()
    try:
        assert connections(exporter) == stats.delivered  # each accepted event exactly once
    finally:
        exporter.stop()
    assert worst_call_s < 0.5  # never a network wait (seconds); generous for a loaded 2-core box


def test_a_lost_answer_is_retried_with_the_same_key_and_counted_once(tmp_path: Path) -> None:
    with (
        Exporter(tmp_path) as exporter,
        ScriptedExporter([Answer(lose=True)], upstream=exporter.url) as proxy,
    ):
        client = Client(proxy.url, agent="bot", flow="refund", **FAST)
        for i in range(50):
            client.record_connection(i % 2 == 0)
        assert client.flush(10)
        client.close(1)
        first, second = proxy.seen
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
        assert first.body == second.body
        assert connections(exporter) == 50  # applied by the first send, replayed for the second
        assert (client.stats().delivered, client.stats().retries) == (50, 1)


def test_a_session_post_is_retried_under_the_same_key_and_the_next_gets_its_own() -> None:
    """The key routes a retry to the replica that may hold the sessions (deploy/nginx)."""
    script = [Answer(503, {"error": "busy"}, {"Retry-After": "0"}), Answer(200), Answer(200)]
    with ScriptedExporter(script) as server:
        client = Client(server.url, agent="bot", flow="refund", **FAST)
        client.submit_session([{"role": "user", "content": "refund?"}], session_id="s-1")
        assert client.flush(10)
        client.submit_session([{"role": "user", "content": "again?"}], session_id="s-2")
        assert client.flush(10)
        client.close(1)
    first, retry, other = server.seen
    assert first.path == retry.path == other.path == "/v1/sessions"
    assert (first.headers["Idempotency-Key"], first.body) == (retry.headers["Idempotency-Key"], retry.body)
    assert other.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]


def test_retry_after_is_honoured_with_the_same_key_and_body() -> None:
    script = [Answer(503, {"error": "busy"}, {"Retry-After": "1"}), Answer(200)]
    with ScriptedExporter(script) as server:
        client = Client(server.url, agent="bot", flow="refund", **FAST)
        client.record_turn(0.5)
        assert client.flush(10)
        client.close(1)
    first, second = server.seen
    assert second.at - first.at >= 0.95  # not the 0.1 s backoff: the server asked for a second
    assert (first.headers["Idempotency-Key"], first.body) == (second.headers["Idempotency-Key"], second.body)
    assert first.path == "/v1/events?partial=true"


def test_a_refused_batch_is_not_retried_and_logged_once_with_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = {
        "error": "1 of 1 events are invalid",
        "detail": [{"index": 0, "field": "flow", "problem": "nope"}],
    }
    caplog.set_level(logging.DEBUG, logger="agentslo_client")
    with ScriptedExporter([Answer(422, refusal), Answer(422, refusal)]) as server:
        client = Client(server.url, agent="bot", flow="refund", **FAST)
        client.record_turn(0.5)
        assert client.flush(10)
        client.record_turn(0.6)
        assert client.flush(10)
        client.close(1)
    assert len(server.seen) == 2  # one request per batch: no retry
    assert client.stats().rejected == 2 and client.stats().delivered == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "not retried" in r.getMessage()]
    assert len(warnings) == 1 and "flow: nope" in warnings[0].getMessage()


def test_a_207_counts_the_refused_events_as_rejected_and_the_rest_delivered() -> None:
    with ScriptedExporter([Answer(207, {"accepted": 3, "rejected": [1, 3], "detail": []})]) as server:
        client = Client(server.url, agent="bot", flow="refund", **FAST)
        for _ in range(5):
            client.record_turn(0.1)
        assert client.flush(10)
        client.close(1)
    assert (client.stats().delivered, client.stats().rejected) == (3, 2)


def test_a_413_batch_is_sent_again_in_halves_under_new_keys() -> None:
    with ScriptedExporter([Answer(413, {"error": "too large"})]) as server:
        client = Client(server.url, agent="bot", flow="refund", max_batch=10, flush_interval_s=5.0)
        for _ in range(10):  # a full batch goes at once
            client.record_turn(0.1)
        assert client.flush(10)
        client.close(1)
    sizes = [len(json.loads(seen.body)) for seen in server.seen]
    assert sizes == [10, 5, 5]
    assert len({seen.headers["Idempotency-Key"] for seen in server.seen}) == 3
    assert client.stats().delivered == 10


def test_drops_are_reported_with_the_next_acknowledged_batch() -> None:
    down = [Answer(503, {"error": "down"}) for _ in range(3)]
    with ScriptedExporter(down) as server:
        client = Client(server.url, agent="bot", flow="refund", max_queue=10, max_batch=10, **FAST)
        for _ in range(15):
            client.record_turn(0.1)
        assert client.stats().dropped == 5
        assert client.flush(10)
        client.record_turn(0.1)
        assert client.flush(10)
        client.close(1)
    acknowledged = server.seen[3:]  # after the three 503s; each drop is told exactly once
    assert sum(int(s.headers.get("X-Agent-SLO-Dropped", "0")) for s in acknowledged) == 5
    assert client.stats().delivered == 11


def test_flush_gives_up_in_time_while_the_exporter_is_down_and_close_counts_what_is_left() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", agent="bot", flow="refund", **FAST)
    for _ in range(5):
        client.record_turn(0.1)
    start = time.monotonic()
    assert not client.flush(0.3)
    assert not client.close(0.3)
    assert time.monotonic() - start < 2.0
    client.record_turn(0.1)  # after close: dropped and counted, no error
    stats = client.stats()
    assert (stats.dropped, stats.queued, stats.delivered) == (6, 0, 0)
    assert stats.last_error is not None and "ConnectionRefused" in stats.last_error


def test_a_forked_child_sends_its_own_events_and_never_its_parents(tmp_path: Path) -> None:
    with Exporter(tmp_path) as exporter:
        client = Client(exporter.url, agent="bot", flow="refund", flush_interval_s=60.0)
        for _ in range(10):
            client.record_connection(True)  # still queued at the fork (a minute's interval)
        pid = os.fork()
        if pid == 0:  # the child: its own queue, counters, keys and sender thread
            code = 1
            try:
                for _ in range(5):
                    client.record_connection(False)
                if client.flush(10) and client.stats().delivered == 5:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.flush(10) and client.stats().delivered == 10
        client.close(1)
        assert exporter.value(names.EVENTS_TOTAL, agent="bot", slo="connection", outcome="good") == 10
        assert exporter.value(names.EVENTS_TOTAL, agent="bot", slo="connection", outcome="bad") == 5


SCRIPT = """
import sys, agentslo_client as slo
slo.init(sys.argv[1], "bot", flow="refund", exit_timeout_s=float(sys.argv[2]), flush_interval_s=30)
for _ in range(3):
    slo.get_client().record_connection(True)
print("done", flush=True)
"""


def test_the_exit_hook_delivers_what_is_queued(tmp_path: Path) -> None:
    with Exporter(tmp_path) as exporter:
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, exporter.url, "5"], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 0 and run.stdout == "done\n", run.stderr
        assert connections(exporter) == 3


def test_the_exit_hook_gives_up_within_its_timeout_when_the_exporter_is_down() -> None:
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"http://127.0.0.1:{free_port()}", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0 and run.stdout == "done\n", run.stderr
    assert "3 events and 0 sessions undelivered" in run.stderr
    assert time.monotonic() - start < 10  # interpreter start-up plus the 0.5 s exit timeout


def test_the_token_is_sent_and_a_wrong_one_is_refused_once(tmp_path: Path) -> None:
    with Exporter(tmp_path, token="s3cret") as exporter:
        right = Client(exporter.url, agent="bot", flow="refund", token="s3cret", **FAST)
        wrong = Client(exporter.url, agent="bot", flow="refund", token="guess", **FAST)
        for client in (right, wrong):
            client.record_connection(True)
            assert client.flush(10)
            client.close(1)
        assert right.stats().delivered == 1
        assert wrong.stats().rejected == 1 and "401" in (wrong.stats().last_error or "")
        assert connections(exporter) == 1


def test_many_threads_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    with Exporter(tmp_path) as exporter:
        client = Client(exporter.url, agent="bot", flow="refund", max_queue=50_000, **FAST)

        def agent() -> None:
            for _ in range(2_000):
                client.record_connection(True)

        threads = [threading.Thread(target=agent) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.flush(20)
        client.close(1)
        assert client.stats().delivered == 16_000 == connections(exporter)


def test_the_aiohttp_transport_delivers_like_the_default(tmp_path: Path) -> None:
    with Exporter(tmp_path) as exporter:
        client = Client(exporter.url, agent="bot", flow="refund", transport="aiohttp", **FAST)
        for _ in range(20):
            client.record_connection(True)
        assert client.flush(10)
        client.close(1)
        assert connections(exporter) == 20
