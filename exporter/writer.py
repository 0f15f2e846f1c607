"""Group commit for `POST /v1/events`: batches that arrive together share one SQLite transaction.

Handlers queue their raw bodies and wait. One flush task at a time takes everything queued (up to
`MAX_GROUP` batches), parses and classifies it on the event loop (CPU work gains nothing from a
thread under the GIL, and thread hand-offs cost more than they save), commits the merged deltas
with every batch's Idempotency-Key on a database thread (the loop keeps reading new requests while
SQLite syncs), then adds them to the in-memory counters and answers each batch. Each batch stays
all-or-nothing and gets its own answer.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
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
    future: asyncio.Future[IngestResult]


class Writer:
    def __init__(self, ingestor: Ingestor, queue_timeout_s: float, parse: Any):
        self.ingestor = ingestor
        self.queue_timeout_s = queue_timeout_s
        self.parse = parse  # (raw, content_type) -> events | IngestResult
        self.closed = False
        self._pending: list[Job] = []
        self._flusher: asyncio.Task[None] | None = None
        self._db = (
            ThreadPoolExecutor(1, thread_name_prefix="agent-slo-db") if ingestor.db is not None else None
        )

    def submit(self, raw: bytes, content_type: str, partial: bool, key: str | None, digest: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append(Job(raw, content_type, partial, key, digest, time.monotonic(), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return future

    async def close(self) -> None:
        self.closed = True
        if self._flusher is not None:
            await self._flusher
        if self._db is not None:
            self._db.shutdown(wait=True)

    async def _flush(self) -> None:
        while self._pending:
            jobs, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            try:
                await self._process(jobs)
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)

    async def _process(self, jobs: list[Job]) -> None:
        answers: dict[int, IngestResult] = {}
        batches: list[tuple[int, Batch]] = []
        clock = time.monotonic()
        for i, job in enumerate(jobs):
            if clock - job.enqueued > self.queue_timeout_s:
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
            now = time.time()
            group = self.ingestor.prepare_many([b for _, b in batches], now)
            if group.members:
                try:
                    if self._db is not None:
                        loop = asyncio.get_running_loop()
                        await loop.run_in_executor(
                            self._db, self.ingestor.persist, group.deltas, now, group.answers
                        )
                except Exception as exc:
                    group.fail(exc)
                else:
                    self.ingestor.publish(group.deltas, now)
            for (i, _), result in zip(batches, group.results, strict=True):
                answers[i] = result
        for i, job in enumerate(jobs):
            if not job.future.done():
                job.future.set_result(answers[i])
