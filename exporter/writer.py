"""Group commit for `POST /v1/events`: batches that arrive together share one SQLite transaction.

Handlers queue their raw bodies and wait. One flush task takes everything queued (up to
`MAX_GROUP` batches), parses (`exporter.wire.parse_body`), classifies, commits and counts it with
`Ingestor.apply_many` (each batch still all-or-nothing, with its own answer), answers every batch,
and yields to the event loop so the requests that arrived meanwhile form the next group.

All of it runs on the event loop thread, the commit (an fsync with `synchronous=full`) included.
Handing the commit to a database thread, so the next group could be classified during the fsync,
was measured slower here: in paired runs of `benchmarks/exporter_ingest.py`'s load, 327-469k
against 408-634k events/s inline, as the thread hand-offs and GIL round trips cost more than the
~0.3 ms fsync they hide. On a slow disk the loop waits longer per commit, and under load the groups
grow instead (more batches arrive during each commit), which spreads the fsync over more events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from agentslo.exporter.ingest import Batch, Ingestor
from agentslo.exporter.wire import IngestResult, error, parse_body

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
    dropped: int = 0  # X-Agent-SLO-Dropped


class Writer:
    def __init__(self, ingestor: Ingestor, queue_timeout_s: float):
        self.ingestor = ingestor
        self.queue_timeout_s = queue_timeout_s
        self.closed = False
        self._pending: list[Job] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(
        self, raw: bytes, content_type: str, partial: bool, key: str | None, digest: str, dropped: int = 0
    ) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._pending.append(Job(raw, content_type, partial, key, digest, time.monotonic(), future, dropped))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return future

    async def close(self) -> None:
        self.closed = True
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        while self._pending:
            jobs, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            self._apply(jobs)
            await asyncio.sleep(0)  # take in the requests that arrived meanwhile: the next group

    def _apply(self, jobs: list[Job]) -> None:
        """Parse, classify, commit and count a group, then answer each of its batches."""
        answers: dict[int, IngestResult] = {}
        try:
            clock = time.monotonic()
            batches: list[tuple[int, Batch]] = []
            for i, job in enumerate(jobs):
                if clock - job.enqueued > self.queue_timeout_s:
                    self.ingestor.reject("overloaded")
                    answers[i] = error(
                        503, "the exporter is overloaded; the batch was not counted, retry later"
                    )
                    continue
                events = parse_body(job.raw, job.content_type)
                if isinstance(events, IngestResult):
                    self.ingestor.reject("invalid_body")
                    answers[i] = events
                    continue
                batches.append((i, Batch(events, job.partial, job.key, job.digest, dropped=job.dropped)))
            if batches:
                results = self.ingestor.apply_many([b for _, b in batches])
                answers.update((i, result) for (i, _), result in zip(batches, results, strict=True))
        except Exception as exc:  # e.g. a storage failure of a lone batch: its handler answers 503
            for i, job in enumerate(jobs):
                if not job.future.done() and i not in answers:
                    job.future.set_exception(exc)
        for i, job in enumerate(jobs):
            if not job.future.done():
                job.future.set_result(answers[i])
