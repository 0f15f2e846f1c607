"""Judge calls in a child process, so LLM judging never competes with ingestion for one interpreter.

An LLM judge call costs a few milliseconds of CPU in the HTTP client; at the 80 calls/s a judge with
concurrency 16 and a 200 ms provider allows, that is a fifth of a core taken from the exporter's ingest
if both share a GIL. `JudgeProcess` runs `run_judge` in a spawned child with its own event loop; the
parent sends (judge, case) over a pipe and awaits the `Verdict`. If the child dies, calls in flight end
as `error` verdicts and the next call starts a new child.

    runner = JudgeProcess()
    await runner.start()
    verdict = await runner.judge("faithfulness", spec.judges["faithfulness"], case)
    await runner.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

from agentslo.judges import model as m
from agentslo.judges import run_judge
from agentslo.judges.llm import BACKOFF_MAX_S, close_clients
from agentslo.judges.model import JudgeInput, Verdict
from agentslo.spec import LLMJudge, RuleJudge

log = logging.getLogger(__name__)

# Beyond the judge's own bound (timeout per attempt, retries, backoff), how long the parent waits for
# an answer before calling the call lost (a wedged child must not hold a worker forever).
GRACE_S = 10.0
START_TIMEOUT_S = 60.0  # spawning imports the judges' dependencies; a loaded machine is slow
_READY = "ready"
# The child's command line (`sys.argv[1]` is its end of the socket pair). Not `-m` on this module: that
# runs it a second time, as `__main__`, after the package (which imports this module) has loaded.
_CHILD = "import sys; from agentslo.feedback.remote import child_main; child_main(int(sys.argv[1]))"


def _bound(judge: LLMJudge | RuleJudge) -> float:
    if isinstance(judge, RuleJudge):
        return GRACE_S
    return (judge.timeout + 1.0 + BACKOFF_MAX_S) * (judge.max_retries + 1) + GRACE_S


async def _serve(conn: Connection) -> None:
    """The child: read (id, name, judge, case) requests, judge them concurrently, send (id, verdict)."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    tasks: set[asyncio.Task[None]] = set()

    async def one(request_id: int, name: str, judge: LLMJudge | RuleJudge, case: JudgeInput) -> None:
        try:
            verdict = await run_judge(name, judge, case)
        except Exception as exc:  # run_judge reports judge failures itself; this is a bug, kept contained
            verdict = m.failed(m.ERROR, f"judge worker: {type(exc).__name__}: {exc}")
        conn.send((request_id, verdict))

    def readable() -> None:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            if not closed.done():
                closed.set_result(None)
            return
        task = loop.create_task(one(*request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_reader(conn.fileno(), readable)
    conn.send(_READY)
    try:
        await closed
    finally:
        await close_clients()


def child_main(fd: int) -> None:
    """The child process's entry point: serve judge calls on the inherited socket `fd` until EOF."""
    try:
        asyncio.run(_serve(Connection(fd)))
    except KeyboardInterrupt:
        pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass


class JudgeProcess:
    """A child process that runs judge calls; safe to share between the coroutines of one event loop."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Verdict]] = {}
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Lock | None = None
        self._reaping: set[asyncio.Future[None]] = set()  # waits for children that are gone

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._proc is not None and self._proc.poll() is None:
                return
            # A fresh interpreter (not fork: the parent has threads and a loop; not multiprocessing's
            # spawn: it re-imports the parent's main script), talking over an inherited socket pair.
            ours, theirs = socket.socketpair()
            parent, child = Connection(ours.detach()), theirs.detach()
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(child)],
                pass_fds=(child,),
                stdin=subprocess.DEVNULL,
            )
            Connection(child).close()
            loop = asyncio.get_running_loop()
            ready = await asyncio.wait_for(loop.run_in_executor(None, parent.recv), START_TIMEOUT_S)
            if ready != _READY:
                raise RuntimeError(f"the judge worker said {ready!r} instead of {_READY!r}")
            self._conn, self._proc = parent, proc
            loop.add_reader(parent.fileno(), self._readable, parent)

    def _readable(self, conn: Connection) -> None:
        try:
            request_id, verdict = conn.recv()
        except (EOFError, OSError):
            self._lost(conn, "the judge worker process exited")
            return
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(verdict)

    def _lost(self, conn: Connection, why: str) -> None:
        asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()
        if conn is self._conn:
            if self._proc is not None:
                self._reap(self._proc)
            self._conn = None
            self._proc = None
        for future in self._pending.values():
            if not future.done():
                future.set_result(m.failed(m.ERROR, why))
        self._pending.clear()
        log.error("judges: %s; calls in flight were counted as errors", why)

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait, off the loop, for a child this runner gave up on (killed if still there), so it
        leaves no zombie behind."""
        if proc.poll() is None:
            proc.kill()
        future = asyncio.get_running_loop().run_in_executor(None, _wait, proc, 5.0)
        self._reaping.add(future)
        future.add_done_callback(self._reaping.discard)

    async def judge(self, name: str, judge: LLMJudge | RuleJudge, case: JudgeInput) -> Verdict:
        """Judge in the child; problems of the child itself come back as `error` verdicts."""
        if self._conn is None:
            try:
                await self.start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                return m.failed(m.ERROR, f"cannot start the judge worker: {exc}")
        conn = self._conn
        assert conn is not None
        request_id = next(self._ids)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            conn.send((request_id, name, judge, case))
        except (OSError, ValueError) as exc:
            self._pending.pop(request_id, None)
            self._lost(conn, f"cannot reach the judge worker: {exc}")
            return m.failed(m.ERROR, f"cannot reach the judge worker: {exc}")
        try:
            return await asyncio.wait_for(asyncio.shield(future), _bound(judge))
        except TimeoutError:
            self._pending.pop(request_id, None)
            return m.failed(m.TIMEOUT, "the judge worker did not answer in time")

    async def stop(self) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            asyncio.get_running_loop().remove_reader(conn.fileno())
            conn.close()  # the child sees EOF and exits
        if proc is not None:
            await asyncio.get_running_loop().run_in_executor(None, _wait, proc, 5.0)
            if proc.poll() is None:
                proc.terminate()
                await asyncio.get_running_loop().run_in_executor(None, _wait, proc, 5.0)
        for future in self._pending.values():
            if not future.done():
                future.set_result(m.failed(m.ERROR, "the judge worker was stopped"))
        self._pending.clear()
        if self._reaping:
            await asyncio.gather(*self._reaping)
