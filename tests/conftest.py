"""What every test gets: logging left as found, and a run that fails on leaked aiohttp clients.

Logging: `agent-slo` commands run in-process (`cli.main([...])`) install the one handler of
`agentslo.logs.configure` on the root logger. Each test leaves logging as it found it, so no test
sees another's handler (two would write every line twice) and pytest's own capture handlers are
never touched.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agentslo import logs


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.setLevel(level)


# --- resource leaks fail the run -------------------------------------------------------------------
# aiohttp reports a client session or connector that was never closed when it is collected, through
# the event loop's exception handler (logged on `asyncio`). Any such report, in any test, fails the
# whole run at its end (after a last collection), naming the test that was running.

LEAK_MESSAGES = ("Unclosed client session", "Unclosed connector")


class _LeakLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.current = "(collection)"
        self.found: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(LEAK_MESSAGES):
            self.found.append((self.current, message.splitlines()[0]))


_LEAKS = _LeakLog()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("asyncio").addHandler(_LEAKS)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _LEAKS.current = nodeid


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter writes the summary
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gc.collect()
    if _LEAKS.found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LEAKS.found:
        terminalreporter.section("resource leaks: aiohttp sessions or connectors never closed", red=True)
        for nodeid, message in _LEAKS.found:
            terminalreporter.line(f"{nodeid}: {message}")
