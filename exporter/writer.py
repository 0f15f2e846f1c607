"""The single writer thread behind `POST /v1/events`, with group commit.

Requests queue their raw bodies; the writer parses them off the event loop, and applies every batch
waiting at that moment with one SQLite transaction (`Ingestor.apply_many`). Each batch stays
all-or-nothing and gets its own answer; concurrent clients share one fsync instead of queueing
behind each other's. The event loop meanwhile keeps serving scrapes and health checks.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from exporter.ingest import Batch, Ingestor, IngestResult, error

MAX_GROUP = 32  # batches per transaction: bounds one commit's size and the wait of the first in line


@dataclass
class Job:
    raw: bytes
    content_type: str
    partial: bool
    key: str | None
    digest: str
    enqueued: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestResult]


def _resolve(future: asyncio.Future[IngestResult], result: IngestResult | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class Writer:
    def __init__(self, ingestor: Ingestor, queue_timeout_s: float, parse: Any):
        self.ingestor = ingestor
        self.queue_timeout_s = queue_timeout_s
        self.parse = parse  # (raw, content_type) -> events | IngestResult
        self.closed = False
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="agent-slo-writer", daemon=True)
        self._thread.start()

    def submit(self, raw: bytes, content_type: str, partial: bool, key: str | None, digest: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put(Job(raw, content_type, partial, key, digest, time.monotonic(), loop, future))
        return future

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = [first], False
            while len(jobs) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._process(jobs)
            if stop:
                return

    def _process(self, jobs: list[Job]) -> None:
        answers: dict[int, IngestResult | BaseException] = {}
        batches: list[tuple[int, Batch]] = []
        now = time.monotonic()
        for i, job in enumerate(jobs):
            if now - job.enqueued > self.queue_timeout_s:
                self.ingestor.reject("overloaded")
                answers[i] = error(503, "the exporter is overloaded; the batch was not counted, retry later")
                continue
            events = self.parse(job.raw, job.content_type)
            if isinstance(events, IngestResult):
                self.ingestor.reject("invalid_body")
                answers[i] = events
                continue
            batches.append((i, Batch(events, job.partial, job.key, job.digest)))
        if batches:
            try:
                results: list[Any] = self.ingestor.apply_many([b for _, b in batches])
            except Exception as exc:
                results = [exc] * len(batches)
            for (i, _), result in zip(batches, results, strict=True):
                answers[i] = result
        for i, job in enumerate(jobs):
            job.loop.call_soon_threadsafe(_resolve, job.future, answers[i])
