"""The bounded queue and the background sender: the part that makes the client safe inside an agent.

The agent's thread only appends an event to a bounded in-memory queue (a lock and a deque append;
when the queue is full the event is dropped and counted, never waited for). One daemon thread
takes batches off the queue, by size (`max_batch`) or by time (`flush_interval_s`), and POSTs them
to `/v1/events?partial=true`:

- **Exactly once across retries.** A batch keeps its body and its `Idempotency-Key` until the
  exporter answers it, so a retry after a lost answer is replayed, not counted twice. Events leave
  the queue only when answered: the queue bound covers the batch in flight too.
- **Retries** on no answer, 408, 409, 425, 429 and 5xx, with exponential backoff and jitter, never
  sooner than the server's `Retry-After`. A 413 splits the batch in two.
- **Refusals are final.** Any other 4xx drops the batch (counted as `rejected`, logged once with
  the server's detail); a 207 counts the refused indices as `rejected` and the rest as delivered.
  `partial=true` keeps one malformed event from taking a whole batch down with it.
- **Drops are counted exactly** and reported to the exporter in the `X-Agent-SLO-Dropped` header
  of the next batch it acknowledges (and in a log line when it answers again).
- **Fork-safe.** A child process starts with an empty queue, its own counters, a new client id for
  its idempotency keys and its own sender thread (started on its first event), so pre-fork servers
  (gunicorn, uwsgi) neither lose nor duplicate events.

Sessions for the judges (`POST /v1/sessions`, deduplicated by session id on the server) take a
second queue, bounded in bytes, encoded when submitted; each POST carries an `Idempotency-Key` of its
own, the same on every retry, so a router hashing by the key sends a retry to the same replica.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from agentslo_client._transport import Response, Transport

log = logging.getLogger("agentslo_client")

EVENTS_PATH = "/v1/events?partial=true"
SESSIONS_PATH = "/v1/sessions"
DROPPED_HEADER = "X-Agent-SLO-Dropped"
MAX_SESSIONS_PER_POST = 100  # the exporter's limit per request (feedback.api.MAX_BATCH_SESSIONS)
MAX_SESSION_POST_BYTES = 4 * 1024 * 1024  # half the exporter's default body limit
RETRYABLE = frozenset({408, 409, 425, 429})  # plus every 5xx
BACKOFF_BASE_S = 0.25
MAX_LOGGED_PROBLEMS = 64  # distinct problems logged at WARNING; later repeats go to DEBUG


@dataclass(frozen=True)
class Stats:
    """What the client did with the events it was given (a snapshot; `Client.stats()`).

    Every event offered is in exactly one of: `delivered`, `rejected`, `dropped`, `queued`.
    """

    delivered: int  # acknowledged by the exporter (counted there exactly once)
    rejected: int  # refused by the exporter (4xx, or the refused part of a 207): not retried
    dropped: int  # never sent: the queue was full, the client closed, or an event could not be encoded
    queued: int  # waiting in memory now, including the batch in flight
    retries: int  # batches sent again after a failure or a Retry-After
    sessions_delivered: int
    sessions_rejected: int
    sessions_dropped: int
    sessions_queued: int
    last_error: str | None  # the most recent delivery problem, for a health endpoint


class Sender:
    """The queues, the counters and the thread that drains them. Thread-safe; see the module docstring."""

    def __init__(
        self,
        transport: Callable[[], Transport],
        headers: dict[str, str],
        *,
        max_queue: int,
        max_batch: int,
        flush_interval_s: float,
        max_session_bytes: int,
        retry_max_s: float,
    ) -> None:
        if max_queue < 1 or max_batch < 1:
            raise ValueError("max_queue and max_batch must be at least 1")
        self._transport_factory = transport
        self._headers = headers
        self.max_queue = max_queue
        self._max_batch = max_batch
        self._interval = flush_interval_s
        self._max_session_bytes = max_session_bytes
        self._retry_max_s = retry_max_s
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        """Fresh state: at construction and in a forked child (whose parent keeps its own queue)."""
        self._lock = threading.Lock()
        self._resolved = threading.Condition(self._lock)  # notified when events leave the queue
        self._wake = threading.Event()  # new work, a flush or a close: the sender should look now
        self._events: deque[dict[str, Any]] = deque()
        self._sessions: deque[bytes] = deque()
        self._session_bytes = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._stop_at: float | None = None  # monotonic deadline once closing
        self._flushing = 0  # callers waiting in flush(): send partial batches now
        self._client_id = secrets.token_hex(6)
        self._seq = 0
        # counters (under the lock)
        self._offered = self._done = 0  # events offered / events that left the queue (any way)
        self._s_offered = self._s_done = 0
        self._delivered = self._rejected = self._dropped = self._retries = 0
        self._s_delivered = self._s_rejected = self._s_dropped = 0
        self._unreported_drops = 0  # drops not yet told to the exporter
        self._last_error: str | None = None
        self._down_since: float | None = None  # when the current outage began (monotonic)
        self._dropping = False
        self._logged: set[tuple[object, ...]] = set()

    # --- the caller's side (any thread; must stay cheap and never raise) ---

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._closing or len(self._events) >= self.max_queue:
                self._dropped += 1
                self._unreported_drops += 1
                first = not self._dropping
                self._dropping = True
            else:
                self._events.append(event)
                self._offered += 1
                if self._thread is None:
                    self._start()
                if len(self._events) % self._max_batch == 0:
                    self._wake.set()
                return
        if first and not self._closing:
            log.warning(
                "agent-slo client: queue full (%d events); new events are dropped and counted until the "
                "exporter takes them (%s)",
                self.max_queue,
                self._last_error or "it is slower than the agent",
            )

    def put_session(self, body: bytes) -> None:
        with self._lock:
            if self._closing or self._session_bytes + len(body) > self._max_session_bytes:
                self._s_dropped += 1
                problem = ("session-full",)
            else:
                self._sessions.append(body)
                self._session_bytes += len(body)
                self._s_offered += 1
                if self._thread is None:
                    self._start()
                self._wake.set()
                return
        self._log_once(
            problem,
            "agent-slo client: session queue full (%d bytes); a session was dropped",
            self._max_session_bytes,
        )

    def _start(self) -> None:  # called with the lock held, once per process
        self._thread = threading.Thread(target=self._run, name="agentslo-client-sender", daemon=True)
        self._thread.start()

    # --- flush, close, stats ---

    def flush(self, timeout_s: float) -> bool:
        """Wait until every event and session offered so far has left the queue (delivered or
        refused). False when `timeout_s` passed first (the exporter is down or slow)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target, s_target = self._offered, self._s_offered
            if self._thread is None or (self._done >= target and self._s_done >= s_target):
                return True
            self._flushing += 1
            self._wake.set()
            try:
                while self._done < target or self._s_done < s_target:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._resolved.wait(left):
                        return self._done >= target and self._s_done >= s_target
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout_s: float) -> bool:
        """Stop taking events, try to deliver what is queued for up to `timeout_s`, then count what
        is left as dropped. Idempotent; True when nothing was left behind."""
        with self._lock:
            if self._closing:
                return not self._events and not self._sessions
            self._closing = True
            self._stop_at = time.monotonic() + timeout_s
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s + 1.0)
        with self._lock:
            left, s_left = len(self._events), len(self._sessions)
            self._events.clear()
            self._sessions.clear()
            self._session_bytes = 0
            self._dropped += left
            self._s_dropped += s_left
            self._done += left
            self._s_done += s_left
            self._resolved.notify_all()
        if left or s_left:
            log.warning(
                "agent-slo client closed with %d events and %d sessions undelivered (%s); counted as dropped",
                left,
                s_left,
                self._last_error or "the exporter did not answer in time",
            )
        _LIVE.discard(self)
        return not left and not s_left

    @property
    def closed(self) -> bool:
        return self._closing

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                delivered=self._delivered,
                rejected=self._rejected,
                dropped=self._dropped,
                queued=len(self._events),
                retries=self._retries,
                sessions_delivered=self._s_delivered,
                sessions_rejected=self._s_rejected,
                sessions_dropped=self._s_dropped,
                sessions_queued=len(self._sessions),
                last_error=self._last_error,
            )

    # --- the sender thread ---

    def _run(self) -> None:
        transport: Transport | None = None
        last_sent = time.monotonic()
        try:
            transport = self._transport_factory()
            while True:
                timed_out = not self._wake.wait(self._interval)
                self._wake.clear()
                closing = self._closing
                partial = closing or timed_out or self._flushing > 0
                partial = partial or time.monotonic() - last_sent >= self._interval
                if self._drain(transport, partial):
                    last_sent = time.monotonic()
                if closing and not self._events and not self._sessions:
                    return
                if self._stop_at is not None and time.monotonic() >= self._stop_at:
                    return
        except Exception as exc:  # a bug here must not take the agent down; the queue is counted at close
            self._last_error = f"sender stopped: {exc!r}"
            log.exception("agent-slo client: the sender thread stopped; events will be counted as dropped")
        finally:
            if transport is not None:
                transport.close()

    def _drain(self, transport: Transport, partial: bool) -> bool:
        """Send what is due; False when nothing was sent."""
        sent = False
        while self._sessions:
            if not self._send_sessions(transport, self._session_batch()):
                return sent
            sent = True
        while True:
            with self._lock:
                n = min(len(self._events), self._max_batch)
            if n == 0 or (n < self._max_batch and not partial):
                return sent
            if not self._send_head(transport, n):
                return sent
            sent = True

    def _session_batch(self) -> list[bytes]:
        with self._lock:
            out: list[bytes] = []
            size = 0
            for body in self._sessions:
                if out and (len(out) >= MAX_SESSIONS_PER_POST or size + len(body) > MAX_SESSION_POST_BYTES):
                    break
                out.append(body)
                size += len(body)
            return out

    def _send_head(self, transport: Transport, n: int) -> bool:
        """POST the first `n` queued events until the exporter answers (False: the close deadline came
        first, and they stay queued); then pop and count them. A 413 sends each half on its own."""
        with self._lock:
            batch = [self._events[i] for i in range(n)]
        body, good = self._encode(batch)
        if not good:
            self._pop(n, delivered=0, rejected=0)
            return True
        with self._lock:
            self._seq += 1
            key = f"{self._client_id}-{os.getpid()}-{self._seq}"
            drops, self._unreported_drops = self._unreported_drops, 0
        headers = {**self._headers, "Content-Type": "application/json", "Idempotency-Key": key}
        if drops:
            headers[DROPPED_HEADER] = str(drops)
        answer = self._post(transport, EVENTS_PATH, body, headers)
        if answer is None or not 200 <= answer.status < 300:
            with self._lock:
                self._unreported_drops += drops  # not told yet: the next acknowledged batch carries them
        if answer is None:
            return False
        if answer.status == 413 and n > 1:  # never applied: the halves go under keys of their own
            half = n // 2
            return self._send_head(transport, half) and self._send_head(transport, n - half)
        if 200 <= answer.status < 300:
            refused = len(_refused_indices(answer))
            if refused:
                self._log_problem(answer, f"{refused} of {len(good)} events refused")
        else:
            refused = len(good)
            self._log_problem(answer, f"a batch of {len(good)} events refused")
        self._pop(n, delivered=len(good) - refused, rejected=refused)
        return True

    def _encode(self, batch: list[dict[str, Any]]) -> tuple[bytes, list[dict[str, Any]]]:
        """The batch as JSON, leaving out events that are not JSON (NaN, objects): `_pop` drops them."""
        try:
            return _dumps(batch), batch
        except (TypeError, ValueError):
            good = []
            for event in batch:
                try:
                    _dumps(event)
                    good.append(event)
                except (TypeError, ValueError) as exc:
                    self._log_once(("encode", type(exc)), "agent-slo client: an event was dropped: %s", exc)
            return _dumps(good), good

    def _send_sessions(self, transport: Transport, bodies: list[bytes]) -> bool:
        body = b"[" + b",".join(bodies) + b"]"
        with self._lock:
            self._seq += 1
            key = f"{self._client_id}-{os.getpid()}-{self._seq}"
        # The server dedupes sessions by id; the key (kept across retries) makes a router that
        # hashes by Idempotency-Key send a retry to the replica that may already hold the sessions.
        headers = {**self._headers, "Content-Type": "application/json", "Idempotency-Key": key}
        answer = self._post(transport, SESSIONS_PATH, body, headers)
        if answer is None:
            return False
        ok = 200 <= answer.status < 300
        if not ok:
            self._log_problem(answer, f"{len(bodies)} session(s) refused")
        with self._lock:
            for _ in bodies:
                self._session_bytes -= len(self._sessions.popleft())
            if ok:
                self._s_delivered += len(bodies)
            else:
                self._s_rejected += len(bodies)
            self._s_done += len(bodies)
            self._resolved.notify_all()
        return True

    def _post(self, transport: Transport, path: str, body: bytes, headers: dict[str, str]) -> Response | None:
        """The exporter's final answer (2xx or a refusal), or None once the close deadline passed."""
        attempt = 0
        while True:
            try:
                answer: Response | None = transport.post(path, body, headers)
                problem = f"HTTP {answer.status}" if answer is not None else ""
            except Exception as exc:  # no answer: connection refused, reset, timeout, DNS
                answer, problem = None, f"{type(exc).__name__}: {exc}"
            if answer is not None and not (answer.status in RETRYABLE or answer.status >= 500):
                self._recovered()
                return answer
            self._failed(problem)
            delay = min(self._retry_max_s, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
            if answer is not None and answer.retry_after is not None:
                delay = max(delay, answer.retry_after)
            if not self._sleep(delay):
                return None
            attempt += 1
            with self._lock:
                self._retries += 1

    def _sleep(self, delay: float) -> bool:
        """Wait before a retry; False when the close deadline comes first."""
        end = time.monotonic() + delay
        while True:
            stop_at = self._stop_at
            if stop_at is not None and stop_at <= end:
                time.sleep(max(0.0, stop_at - time.monotonic()))
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))  # short naps: a close() sets the deadline meanwhile

    def _failed(self, problem: str) -> None:
        self._last_error = problem
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "agent-slo client: the exporter did not take a batch (%s); holding up to %d events, retrying",
                problem,
                self.max_queue,
            )

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        down_s = time.monotonic() - self._down_since
        self._down_since = None
        with self._lock:
            dropped, self._dropping = self._dropped, False
        log.warning(
            "agent-slo client: the exporter answers again after %.1fs; %d events dropped so far (stats())",
            down_s,
            dropped,
        )

    def _pop(self, n: int, *, delivered: int, rejected: int) -> None:
        with self._lock:
            for _ in range(n):
                self._events.popleft()
            self._delivered += delivered
            self._rejected += rejected
            self._dropped += n - delivered - rejected  # events that could not be encoded
            self._done += n
            self._resolved.notify_all()

    # --- logging ---

    def _log_problem(self, answer: Response, what: str) -> None:
        error, detail = _problem(answer)
        self._last_error = f"HTTP {answer.status}: {error or detail}"
        self._log_once(
            (answer.status, error),
            "agent-slo client: %s by the exporter (HTTP %d, not retried): %s %s",
            what,
            answer.status,
            error,
            detail,
        )

    def _log_once(self, key: tuple[object, ...], message: str, *args: object) -> None:
        if key in self._logged or len(self._logged) >= MAX_LOGGED_PROBLEMS:
            log.debug(message, *args)
            return
        self._logged.add(key)
        log.warning(message, *args)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _refused_indices(answer: Response) -> list[Any]:
    """The indices a 207 lists as refused (none for a 200)."""
    if answer.status != 207:
        return []
    try:
        body = json.loads(answer.body)
    except ValueError:
        return []
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return rejected if isinstance(rejected, list) else []


def _problem(answer: Response) -> tuple[str, str]:
    """The design's error shape: `{"error": ..., "detail": [...]}`, shortened for a log line."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return answer.body[:200].decode("utf-8", "replace"), ""
    if not isinstance(body, dict):
        return str(body)[:200], ""
    detail = body.get("detail") or []
    shown = "; ".join(
        f"[{d.get('index')}] {d.get('field')}: {d.get('problem')}" for d in detail[:5] if isinstance(d, dict)
    )
    more = f" (+{len(detail) - 5} more)" if isinstance(detail, list) and len(detail) > 5 else ""
    return str(body.get("error", ""))[:200], shown + more


# Every live sender, so one fork hook and one exit hook serve them all (weak: a dropped client goes).
_LIVE: weakref.WeakSet[Sender] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sender in list(_LIVE):
        sender._reset()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
