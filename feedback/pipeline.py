"""The judging pipeline: sessions in, verdicts out as `judge` events, worth-keeping sessions stored.

Ingestion only enqueues (`Pipeline.submit` never awaits). Two stages, both bounded:

1. intake (one task, in batches): rule judges on every session, the SLI-bad and sampled sessions
   stored (one transaction per batch), rule verdicts applied as `judge` events;
2. one queue per LLM judge, drained by `concurrency` tasks: the head-sampled sessions are judged,
   verdicts applied and attached to the stored session.

Both stages are bounded by count and by bytes (of the sessions' JSON), and so is the reading of
request bodies: a full intake refuses the session (`Overloaded`: the API answers 503 with
Retry-After), as does a full reading budget; a full LLM queue sheds that judge's verdict. Refused
requests are counted in the exporter's `agent_slo_ingest_rejected_total{reason="overloaded"}`, sheds
as the judge's `shed` outcome in `agent_slo_judge_calls_total`, like every other judge failure:
never against the agent.

Nothing that reads a session's text runs on the event loop, so a scrape or an ingest never waits on
one: rule judges, redaction and the JSON of stored bodies run on one text thread (`Pipeline.text`;
RE2, which the judges and redaction match with, releases the GIL and takes linear time), SQLite on
another (`Pipeline.db`), and LLM judge calls in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import openai

from agentslo.feedback.remote import JudgeProcess
from agentslo.feedback.sampling import sampled
from agentslo.feedback.store import SLI_REVIEW, EncodedSession, ReviewRecord, SessionRecord, SessionStore
from agentslo.judges import JudgeInput, Verdict, applies, run_judge
from agentslo.judges import model as outcomes
from agentslo.judges.llm import close_clients
from agentslo.judges.rule import evaluate
from agentslo.spec import LLMJudge, RuleJudge, Spec

log = logging.getLogger(__name__)
T = TypeVar("T")

# Sessions waiting for the rule stage before new ones are refused (503); a few seconds of a busy fleet.
DEFAULT_INTAKE_SIZE = 10_000
# Sessions waiting per LLM judge before its verdicts are shed; ~12 s of work at 80 judged/s.
DEFAULT_LLM_QUEUE_SIZE = 1_000
# Sessions the rule stage takes per transaction: amortises SQLite commits under load.
INTAKE_BATCH = 256
# Bytes of sessions (their JSON) waiting for or in the rule stage before new ones are refused: with the
# count bound alone, 10,000 queued 80 KB sessions held ~1 GB. Python objects take ~2-4x their JSON.
DEFAULT_INTAKE_BYTES = 64 * 1024 * 1024
# Bytes of sessions held for LLM judges (each session once, however many judges sampled it).
DEFAULT_LLM_QUEUE_BYTES = 64 * 1024 * 1024
# Bytes of POST /v1/sessions bodies being read and parsed at once (one body of any size always fits).
DEFAULT_READING_BYTES = 32 * 1024 * 1024
# Session ids remembered to drop re-sent sessions (a retry must not be judged, or counted, twice); kept
# as 16-byte digests, so the window's memory does not depend on how long the ids are.
DEFAULT_DEDUPE_WINDOW = 100_000
_SEEN_DIGEST_BYTES = 16
# Share of sessions kept although nothing marked them bad: the head sample the review queue and the
# balanced calibration set need beyond the LLM judges' own samples.
DEFAULT_STORE_SAMPLE_RATE = 0.01
STORE_SAMPLER = "store"  # the name the store's own head sample hashes with
PRUNE_INTERVAL_S = 60.0
# Workers per provider slot of an LLM judge: while one worker stores and applies a verdict, another
# holds the slot (the judge's own semaphore still caps calls in flight at its `concurrency`).
WORKERS_PER_SLOT = 2
# LLM verdicts are applied, counted and stored in batches gathered over this long: one ingest call and
# one SQLite transaction per batch instead of per verdict (verdicts lag by at most this much).
VERDICT_FLUSH_S = 0.1


Call = tuple[str, str, str, str]  # agent, judge, judge_version, outcome


class Sink(Protocol):
    """Where the pipeline's results go: judge events, judge calls and agreement ratios; thread-safe, sync.

    The exporter hands in its ingest (`agentslo.exporter.ingest.Ingestor` fits), tests a recorder. A sink
    may also have `reject(reason, sessions)` to count refused `POST /v1/sessions` in its health counters.
    """

    def apply(self, events: list[dict[str, Any]], *, partial: bool = False) -> Any: ...

    def record_judge_call(
        self, agent: str, judge: str, judge_version: str, outcome: str, cost_usd: float
    ) -> Any: ...
    def set_judge_agreement(self, agent: str, judge: str, judge_version: str, ratio: float) -> Any: ...


@dataclass
class RuleStage:
    """What the rule stage made of a batch of sessions (on the text thread), for the loop to record."""

    events: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[Call] = field(default_factory=Counter)
    sessions: list[EncodedSession] = field(default_factory=list)
    reviews: list[ReviewRecord] = field(default_factory=list)


class Overloaded(Exception):
    """The intake queue is full: the session is refused, to be retried later."""


@dataclass(frozen=True)
class PipelineConfig:
    intake_size: int = DEFAULT_INTAKE_SIZE
    llm_queue_size: int = DEFAULT_LLM_QUEUE_SIZE
    intake_bytes: int = DEFAULT_INTAKE_BYTES
    llm_queue_bytes: int = DEFAULT_LLM_QUEUE_BYTES
    reading_bytes: int = DEFAULT_READING_BYTES
    store_sample_rate: float = DEFAULT_STORE_SAMPLE_RATE
    dedupe_window: int = DEFAULT_DEDUPE_WINDOW
    # LLM judge calls in a child process (agentslo.feedback.remote), off the ingest's interpreter.
    judge_process: bool = False


@dataclass(frozen=True)
class Job:
    spec: Spec
    case: JudgeInput
    record: SessionRecord
    exclude: str | None
    trace_id: str | None
    llm_judges: tuple[str, ...]  # the LLM judges whose head sample holds this session
    keep: bool  # stored whatever the judges say (SLI-bad or head-sampled)
    size: int = 0  # bytes of the session's JSON, for the byte bounds


@dataclass
class Stats:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    stored: int = 0
    apply_errors: int = 0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (judge, outcome) → calls

    def as_dict(self) -> dict[str, Any]:
        calls: dict[str, dict[str, int]] = {}
        for (judge, outcome), n in sorted(self.calls.items()):
            calls.setdefault(judge, {})[outcome] = n
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "stored": self.stored,
            "apply_errors": self.apply_errors,
            "judge_calls": calls,
        }


def _seen_key(session_id: str) -> bytes:
    return hashlib.blake2b(session_id.encode(), digest_size=_SEEN_DIGEST_BYTES).digest()


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1024 * 1024):g} MiB"


def judge_burns(spec: Spec, judge: str, flow: str) -> dict[str, tuple[int, float]]:
    """The SLOs a failing verdict of `judge` in `flow` is a bad event for, with the budget it burns."""
    return {
        slo: (1, burn_weight(spec, slo, flow))
        for slo, s in spec.slos.items()
        if s.sli.judge == judge and flow in spec.flows_of(slo)
    }


def burn_weight(spec: Spec, slo: str, flow: str) -> float:
    """Budget one bad event burns, relative to a 1%-budget SLO's: 1 / error budget (in percent)."""
    return 1.0 / max(100.0 - spec.objective_for(slo, flow), 1e-9)


class Pipeline:
    """Runs the judges of every agent's spec over submitted sessions, in the background."""

    def __init__(
        self,
        specs: Mapping[str, Spec],
        sink: Sink,
        store: SessionStore,
        config: PipelineConfig = PipelineConfig(),
        *,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.sink = sink
        self.store = store
        self.config = config
        self.client = client
        self.stats = Stats()
        self._intake: asyncio.Queue[Job] = asyncio.Queue(config.intake_size)
        self._llm: dict[tuple[str, str], asyncio.Queue[Job]] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        # Bytes held: by sessions in the intake (queued or in the batch being judged), by sessions held
        # for LLM judges (with how many judges still hold each job), and by bodies being read.
        self._intake_bytes = 0
        self._llm_bytes = 0
        self._llm_holds: dict[int, int] = {}  # id(job) → LLM judges still to judge it
        self._reading_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Future[Any]] = set()  # emits scheduled from sync code
        # The exporter's ingest commits to SQLite: call it from a thread of its own, in order.
        self._emitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-slo-judge-events")
        self._remote = JudgeProcess() if config.judge_process and client is None else None
        self._verdicts: list[tuple[Job, str, LLMJudge, Verdict]] = []
        self._verdicts_ready = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-slo-sessions")
        # Text work (rule judges, redaction, top terms, datasets): one thread, so it never takes more
        # than one core from ingest, and its queue is the intake's own (one batch at a time).
        self._text = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-slo-judge-text")
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    # --- lifecycle ---

    async def start(self) -> None:
        if self._remote is not None and any(
            isinstance(j, LLMJudge) for spec in self.specs.values() for j in spec.judges.values()
        ):
            try:
                await self._remote.start()
            except (EOFError, OSError, RuntimeError, TimeoutError) as exc:
                # Judging in-process is slower for ingest but still correct: better than no judges.
                log.warning("judges: no judge process (%s); LLM judges run in the exporter process", exc)
                self._remote = None
        self._tasks.append(asyncio.create_task(self._intake_loop(), name="judging-intake"))
        for agent, spec in self.specs.items():
            for name, judge in spec.judges.items():
                if isinstance(judge, LLMJudge):
                    self._llm[(agent, name)] = asyncio.Queue(self.config.llm_queue_size)
                    for i in range(judge.concurrency * WORKERS_PER_SLOT):
                        task = asyncio.create_task(
                            self._llm_loop(agent, name, judge), name=f"judge-{name}-{i}"
                        )
                        self._tasks.append(task)
        await self.db(self.store.prune)  # retention applies across restarts, not only after a minute
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="sessions-prune"))
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="judging-verdicts"))
        await self.republish_agreements()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._remote is not None:
            await self._remote.stop()
        await close_clients()  # in-process judges' HTTP clients
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.db(self.store.close)
        self._thread.shutdown(wait=True)
        self._text.shutdown(wait=True)
        self._emitter.shutdown(wait=True)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call on the store's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def text(self, fn: Callable[..., T], *args: Any) -> T:
        """Run work that reads sessions' text (judging, redacting, summarising) on the text thread."""
        return await asyncio.get_running_loop().run_in_executor(self._text, fn, *args)

    async def drained(self, timeout: float = 30.0) -> None:
        """Wait until every submitted session has been judged (tests, benchmarks, shutdown)."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                await asyncio.sleep(0)
                if self._busy == 0:
                    return

    def intake_free(self) -> int:
        """Sessions the intake queue can still take."""
        return self.config.intake_size - self._intake.qsize()

    def intake_refusal(self, sessions: int, nbytes: int) -> str | None:
        """Why the intake cannot take `sessions` sessions of `nbytes` bytes of JSON now, or None."""
        if self.intake_free() < sessions:
            return f"the judging queue is full ({self.config.intake_size} sessions)"
        if self._intake_bytes and self._intake_bytes + nbytes > self.config.intake_bytes:
            return f"the judging queue is full ({_mib(self.config.intake_bytes)} of sessions)"
        return None

    def start_reading(self, nbytes: int) -> bool:
        """Reserve `nbytes` of the reading budget for a request body; False (nothing reserved) when
        bodies already being read would exceed it. One body always fits, whatever its size."""
        if self._reading_bytes and self._reading_bytes + nbytes > self.config.reading_bytes:
            return False
        self._reading_bytes += nbytes
        return True

    def done_reading(self, nbytes: int) -> None:
        self._reading_bytes -= nbytes

    def queue_depths(self) -> dict[str, int]:
        depths = {"intake": self._intake.qsize()}
        depths.update({f"{agent}/{judge}": q.qsize() for (agent, judge), q in self._llm.items()})
        return depths

    def queue_bytes(self) -> dict[str, int]:
        """Bytes of session JSON held by each bound (see `/v1/judging`)."""
        return {"intake": self._intake_bytes, "llm": self._llm_bytes, "reading": self._reading_bytes}

    # --- intake (called by the HTTP handler; never awaits) ---

    def submit(
        self,
        spec: Spec,
        session: dict[str, Any],
        record: SessionRecord,
        *,
        exclude: str | None = None,
        trace_id: str | None = None,
        size: int = 0,
    ) -> dict[str, Any]:
        """Queue a validated session (`size` bytes of JSON) for judging; raises Overloaded when the
        intake is full, by count or by bytes."""
        sid = record.session_id
        if _seen_key(sid) in self._seen:
            self.stats.duplicates += 1
            return {"session_id": sid, "duplicate": True}
        llm = tuple(
            name
            for name, j in spec.judges.items()
            if isinstance(j, LLMJudge)
            and applies(j, record.flow)
            and sampled(sid, name, j.version, j.sample_rate)
        )
        keep = (
            bool(record.bad_slos)
            or bool(llm)
            or sampled(sid, STORE_SAMPLER, "", self.config.store_sample_rate)
        )
        refusal = self.intake_refusal(1, size)
        if refusal is not None:
            self.stats.refused += 1
            shed: Counter[Call] = Counter()
            for name, judge in spec.judges.items():
                if applies(judge, record.flow):
                    self._tally(shed, spec.agent, name, judge.version, outcomes.SHED)
            self._emit_soon([], shed, {})
            raise Overloaded(refusal)
        job = Job(spec, JudgeInput.from_session(session), record, exclude, trace_id, llm, keep, size)
        self._intake.put_nowait(job)  # room was checked above
        self._intake_bytes += size
        self._remember(sid)
        self._enter()
        self.stats.accepted += 1
        rules = [n for n, j in spec.judges.items() if isinstance(j, RuleJudge) and applies(j, record.flow)]
        return {
            "session_id": sid,
            "duplicate": False,
            "judges": rules + list(llm),
            "sampled": list(llm),
            "stored": keep,
        }

    def _remember(self, sid: str) -> None:
        self._seen[_seen_key(sid)] = None
        if len(self._seen) > self.config.dedupe_window:
            self._seen.popitem(last=False)

    def _enter(self, n: int = 1) -> None:
        self._busy += n
        self._idle.clear()

    def _leave(self, n: int = 1) -> None:
        self._busy -= n
        if self._busy <= 0:
            self._idle.set()

    # --- stage 1: rule judges, storage ---

    async def _intake_loop(self) -> None:
        while True:
            jobs = [await self._intake.get()]
            while len(jobs) < INTAKE_BATCH and not self._intake.empty():
                jobs.append(self._intake.get_nowait())
            try:
                await self._intake_batch(jobs)
            except Exception:  # a bug or a broken disk must not stop judging for good
                log.exception("judging: a batch of %d sessions failed", len(jobs))
            finally:
                self._intake_bytes -= sum(job.size for job in jobs)
                self._leave(len(jobs))

    async def _intake_batch(self, jobs: list[Job]) -> None:
        stage = await self.text(self._rule_stage, jobs)
        for (_, judge, _, outcome), n in stage.calls.items():
            self.stats.calls[(judge, outcome)] += n
        if stage.sessions:
            self.stats.stored += await self.db(self.store.insert, stage.sessions, stage.reviews)
            if self.store.total_bytes > self.store.max_bytes:
                await self.db(self.store.prune)
        for job in jobs:
            for name in job.llm_judges:
                self._to_llm(job, name, stage.calls)
        await self._emit(stage.events, stage.calls, {})

    def _rule_stage(self, jobs: list[Job]) -> RuleStage:
        """On the text thread: run the rule judges, and redact and encode the sessions worth keeping.
        Reads only the jobs and the (immutable) specs; the loop records the outcome."""
        stage = RuleStage()
        for job in jobs:
            spec, rec = job.spec, job.record
            bad = dict(rec.bad_slos)
            job_reviews = []
            for name, judge in spec.judges.items():
                if not isinstance(judge, RuleJudge) or not applies(judge, rec.flow):
                    continue
                verdict = evaluate(judge, job.case)
                stage.calls[(spec.agent, name, judge.version, verdict.outcome)] += 1
                stage.events.append(self._event(job, name, judge.version, verdict))
                if verdict.score is not None and verdict.score < judge.pass_threshold:
                    for slo, (n, burn) in judge_burns(spec, name, rec.flow).items():
                        old = bad.get(slo, (0, 0.0))
                        bad[slo] = (old[0] + n, old[1] + burn)
                    job_reviews.append(
                        ReviewRecord(
                            rec.session_id,
                            name,
                            judge.version,
                            verdict.score,
                            False,
                            verdict.explanation,
                            True,
                        )
                    )
            if rec.bad_slos:
                why = "bad for " + ", ".join(sorted(rec.bad_slos))
                job_reviews.append(ReviewRecord(rec.session_id, SLI_REVIEW, "", None, None, why, True))
            failed = any(r.flagged for r in job_reviews)
            if job.keep or failed:
                stage.sessions.append(self.store.encode(replace(rec, bad_slos=bad, flagged=failed)))
                stage.reviews += job_reviews
        return stage

    def _to_llm(self, job: Job, name: str, calls: Counter[Call]) -> None:
        queue = self._llm[(job.spec.agent, name)]
        held = id(job) in self._llm_holds
        over_bytes = not held and self._llm_bytes and self._llm_bytes + job.size > self.config.llm_queue_bytes
        if queue.full() or over_bytes:
            self._tally(calls, job.spec.agent, name, job.spec.judges[name].version, outcomes.SHED)
            return
        queue.put_nowait(job)
        if not held:
            self._llm_bytes += job.size
        self._llm_holds[id(job)] = self._llm_holds.get(id(job), 0) + 1
        self._enter()

    def _release_llm(self, job: Job) -> None:
        """One LLM judge is done with `job`; the last one releases its bytes."""
        left = self._llm_holds.pop(id(job)) - 1
        if left:
            self._llm_holds[id(job)] = left
        else:
            self._llm_bytes -= job.size

    # --- stage 2: LLM judges ---

    async def _llm_loop(self, agent: str, name: str, judge: LLMJudge) -> None:
        queue = self._llm[(agent, name)]
        while True:
            job = await queue.get()
            try:
                if self._remote is not None:
                    verdict = await self._remote.judge(name, judge, job.case)
                else:
                    verdict = await run_judge(name, judge, job.case, client=self.client)
            except Exception as exc:  # run_judge reports judge failures itself: this is a bug, contained
                log.exception("judging: judge %s failed on session %s", name, job.record.session_id)
                verdict = outcomes.failed(outcomes.ERROR, f"{type(exc).__name__}: {exc}")
            # Handed to the flusher, which applies, counts and stores verdicts in batches (and leaves).
            self._verdicts.append((job, name, judge, verdict))
            self._verdicts_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._verdicts_ready.wait()
            await asyncio.sleep(VERDICT_FLUSH_S)
            self._verdicts_ready.clear()
            batch, self._verdicts = self._verdicts, []
            try:
                await self._flush(batch)
            except Exception:
                log.exception("judging: %d verdicts could not be recorded", len(batch))
            finally:
                for job, *_ in batch:
                    self._release_llm(job)
                self._leave(len(batch))

    async def _flush(self, batch: list[tuple[Job, str, LLMJudge, Verdict]]) -> None:
        events: list[dict[str, Any]] = []
        calls: Counter[Call] = Counter()
        cost: defaultdict[Call, float] = defaultdict(float)
        verdicts: list[tuple[ReviewRecord, dict[str, tuple[int, float]]]] = []
        for job, name, judge, verdict in batch:
            rec = job.record
            self._tally(calls, rec.agent, name, judge.version, verdict.outcome)
            cost[(rec.agent, name, judge.version, verdict.outcome)] += verdict.cost_usd
            if not verdict.ok:
                continue
            events.append(self._event(job, name, judge.version, verdict))
            passed = bool(verdict.passed(judge.pass_threshold))
            bad = {} if passed else judge_burns(job.spec, name, rec.flow)
            review = ReviewRecord(
                rec.session_id, name, judge.version, verdict.score, passed, verdict.explanation, not passed
            )
            verdicts.append((review, bad))
        await self._emit(events, calls, dict(cost))
        if verdicts:
            await self.db(self.store.add_verdicts, verdicts)

    # --- outputs ---

    @staticmethod
    def _event(job: Job, judge: str, version: str, verdict: Verdict) -> dict[str, Any]:
        event = {
            "type": "judge",
            "agent": job.record.agent,
            "flow": job.record.flow,
            "judge": judge,
            "judge_version": version,
            "score": verdict.score,
            "session_id": job.record.session_id,
        }
        if job.exclude:
            event["exclude"] = job.exclude
        if job.trace_id:
            event["trace_id"] = job.trace_id
        return event

    def _tally(
        self, calls: Counter[Call], agent: str, judge: str, version: str, outcome: str
    ) -> Counter[Call]:
        self.stats.calls[(judge, outcome)] += 1
        calls[(agent, judge, version, outcome)] += 1
        return calls

    def _emit_sync(self, events: list[dict[str, Any]], calls: Counter[Call], cost: dict[Call, float]) -> None:
        """On the emit thread: apply verdicts as judge events, then count the judge calls."""
        events = [e for e in events if e["score"] is not None]
        if events:
            try:
                result = self.sink.apply(events, partial=True)
                if getattr(result, "status", 200) >= 300:
                    self.stats.apply_errors += 1
                    log.warning(
                        "judging: the exporter refused judge events: %s", getattr(result, "body", result)
                    )
            except Exception:
                self.stats.apply_errors += 1
                log.exception("judging: the exporter refused %d judge event(s)", len(events))
        for (agent, judge, version, outcome), n in calls.items():
            # One call per judge call (the ingest API counts calls one by one); the cost rides on the first.
            for i in range(n):
                spent = cost.get((agent, judge, version, outcome), 0.0) if i == 0 else 0.0
                try:
                    self.sink.record_judge_call(agent, judge, version, outcome, spent)
                except Exception:
                    log.exception("judging: cannot count a call of judge %s", judge)
                    break

    async def _emit(
        self, events: list[dict[str, Any]], calls: Counter[Call], cost: dict[Call, float]
    ) -> None:
        await asyncio.get_running_loop().run_in_executor(self._emitter, self._emit_sync, events, calls, cost)

    def reject(self, reason: str, sessions: int = 0) -> None:
        """Count a refused `POST /v1/sessions` in the exporter's own health counters, when it has them."""
        reject = getattr(self.sink, "reject", None)
        if reject is not None:
            self._emitter.submit(reject, reason, sessions)

    def _emit_soon(self, events: list[dict[str, Any]], calls: Counter[Call], cost: dict[Call, float]) -> None:
        """Emit from synchronous code (the HTTP handler) without waiting."""
        future = asyncio.ensure_future(self._emit(events, calls, cost))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def set_agreement(
        self, agent: str, judge: str, version: str, ratio: float, n: int, source: str
    ) -> None:
        """Record and publish a judge version's agreement with human labels."""
        await self.db(self.store.set_agreement, agent, judge, version, ratio, n, source)
        await asyncio.get_running_loop().run_in_executor(
            self._emitter, self.sink.set_judge_agreement, agent, judge, version, ratio
        )

    async def republish_agreements(self) -> None:
        """After a restart, publish the stored agreement of every current judge version."""
        for row in await self.db(self.store.agreements):
            spec = self.specs.get(row["agent"])
            judge = spec.judges.get(row["judge"]) if spec else None
            if judge is not None and judge.version == row["judge_version"]:
                await asyncio.get_running_loop().run_in_executor(
                    self._emitter,
                    self.sink.set_judge_agreement,
                    row["agent"],
                    row["judge"],
                    row["judge_version"],
                    row["ratio"],
                )

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            try:
                started = time.monotonic()
                deleted = await self.db(self.store.prune)
                if deleted:
                    log.info("sessions: pruned %d in %.3fs", deleted, time.monotonic() - started)
            except Exception:
                log.exception("sessions: pruning failed")
