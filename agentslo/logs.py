"""Logging, set up once for every command: one `agentslo.*` namespace, a level, text or JSON lines.

Every module logs to `logging.getLogger(__name__)`, so each logger of the project sits under
`agentslo.` (`agentslo.exporter.app`, `agentslo.synthetic.runner`, ...) and one level or filter
on `agentslo` reaches all of them. The CLI calls `configure` once, from its global flags:

    agent-slo --log-level debug --log-format json serve examples/cx-support.slo.yaml

A JSON line is one object with `time` (RFC 3339, UTC, milliseconds), `level`, `logger`, `message`
and, when an exception is logged, `exception` (the formatted traceback), ready for Loki, an ELK
stack or `jq`:

    {"time":"2026-12-13T09:30:00.125Z","level":"error","logger":"agentslo.exporter.app","message":"..."}

Output goes to the process's standard error as it is when each record is written, so callers (and
tests) that redirect `sys.stderr` see the log there.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, TextIO

import orjson

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted by another handler
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler bound to `sys.stderr` as it is at each write, not as it was at setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


_handler: logging.Handler | None = None  # the one handler configure() owns on the root logger


def configure(level: str | int = "info", fmt: str = "text") -> None:
    """Send every log record at `level` or above to standard error, as `fmt` ("text" or "json").

    Calling it again replaces what the previous call set up (and nothing else: handlers that others
    put on the root logger, such as pytest's, stay)."""
    global _handler
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; choose one of: {', '.join(LEVELS)}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric)
    _handler = handler
