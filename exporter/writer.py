"""Group commit for `POST /v1/events`: batches that arrive together share one SQLite transaction.

Handlers queue their raw bodies and wait. One flush task takes everything queued (up to `MAX_GROUP`
batches), parses and classifies it on the event loop (CPU work gains nothing from a thread under
the GIL, and thread hand-offs cost more than they save), commits the merged deltas with every
batch's Idempotency-Key on a database thread, and meanwhile prepares the next group; once the
commit is done it adds the deltas to the in-memory counters and answers each batch. Each batch
stays all-or-nothing and gets its own answer.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from exporter.ingest import Batch, Group, Ingestor, IngestResult, error

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
        # Pipelined: the next group is parsed and classified while the previous one's commit syncs
        # on the database thread; groups are committed and published strictly in order.
        inflight: Stage | None = None
        while self._pending or inflight is not None:
            stage = None
            if self._pending:
                jobs, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                ahead = inflight.group.deltas if inflight is not None and inflight.group is not None else None
                stage = self._stage(jobs, ahead)
            if inflight is not None:
                await self._finish(inflight)
            inflight = stage

    def _stage(self, jobs: list[Job], ahead: Any) -> Stage | None:
        """Parse and classify a group, and queue its commit behind any commit in flight."""
        stage = Stage(jobs)
        try:
            clock = time.monotonic()
            batches: list[tuple[int, Batch]] = []
            for i, job in enumerate(jobs):
                if clock - job.enqueued > self.queue_timeout_s:
                    self.ingestor.reject("overloaded")
                    stage.answers[i] = error(
                        503, "the exporter is overloaded; the batch was not counted, retry later"
                    )
                    continue
                events = self.parse(job.raw, job.content_type)
                if isinstance(events, IngestResult):
                    self.ingestor.reject("invalid_body")
                    stage.answers[i] = events
                    continue
                batches.append((i, Batch(events, job.partial, job.key, job.digest)))
            if batches:
                stage.now = time.time()
                stage.positions = [i for i, _ in batches]
                stage.group = self.ingestor.prepare_many([b for _, b in batches], stage.now, ahead)
                if stage.group.members and self._db is not None:
                    stage.commit = asyncio.get_running_loop().run_in_executor(
                        self._db,
                        self.ingestor.persist,
                        stage.group.deltas,
                        stage.now,
                        stage.group.answers,
                        ahead,
                    )
        except Exception as exc:  # handed to every request of the group
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return None
        return stage

    async def _finish(self, stage: Stage) -> None:
        """Wait for the group's commit, then count it and answer every batch."""
        group = stage.group
        if group is not None:
            if group.members:
                try:
                    if stage.commit is not None:
                        await stage.commit
                except Exception as exc:  # rolled back: answered 503, nothing counted
                    group.fail(exc)
                else:
                    self.ingestor.publish(group.deltas, stage.now)
            for i, result in zip(stage.positions, group.results, strict=True):
                stage.answers[i] = result
        for i, job in enumerate(stage.jobs):
            if not job.future.done():
                job.future.set_result(stage.answers[i])


@dataclass
class Stage:
    """One group on its way through the pipeline."""

    jobs: list[Job]
    answers: dict[int, IngestResult] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)  # job index of each prepared batch
    group: Group | None = None
    now: float = 0.0
    commit: asyncio.Future[None] | None = None
