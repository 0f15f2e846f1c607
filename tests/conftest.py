"""Fixtures every test gets.

Logging: `agent-slo` commands run in-process (`cli.main([...])`) install the one handler of
`agentslo.logs.configure` on the root logger. Each test leaves logging as it found it, so no test
sees another's handler (two would write every line twice) and pytest's own capture handlers are
never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
