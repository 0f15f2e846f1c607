"""Logging: text or JSON lines on standard error, set up once, and every logger under `agentslo.`."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentslo import logs

PACKAGE = Path(__file__).resolve().parents[1] / "agentslo"
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def lines(err: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in err.splitlines()]


def test_json_lines_carry_time_level_logger_message_and_exception(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    log = logging.getLogger("agentslo.exporter.app")
    log.info("ingest %s", "ok")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("ingest failed: %d batches", 2)
    first, second = lines(capsys.readouterr().err)
    assert RFC3339_UTC_MS.match(first.pop("time"))
    assert first == {"level": "info", "logger": "agentslo.exporter.app", "message": "ingest ok"}
    assert second["level"] == "error" and second["message"] == "ingest failed: 2 batches"
    assert second["exception"].startswith("Traceback") and "ZeroDivisionError" in second["exception"]


def test_text_lines_say_when_what_level_and_which_logger(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("warning", "text")
    logging.getLogger("agentslo.synthetic.runner").warning("could not deliver %s", "r1")
    logging.getLogger("agentslo.synthetic.runner").info("below the level")
    [line] = capsys.readouterr().err.splitlines()
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING agentslo.synthetic.runner: could not", line
    )


def test_configuring_again_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    logs.configure("debug", "text")
    logs.configure("error", "json")
    ours = [h for h in root.handlers if h is not foreign and isinstance(h.formatter, logs.JsonFormatter)]
    assert len(ours) == 1 and foreign in root.handlers
    assert not [h for h in root.handlers if type(h.formatter) is logging.Formatter]
    assert root.level == logging.ERROR


def test_records_go_to_stderr_as_it_is_when_written(monkeypatch: pytest.MonkeyPatch) -> None:
    logs.configure("info", "json")
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)  # redirected after configure()
    logging.getLogger("agentslo.gate").info("after")
    assert lines(later.getvalue())[0]["message"] == "after"


@pytest.mark.parametrize(("level", "fmt"), [("loud", "text"), ("info", "xml")])
def test_unknown_levels_and_formats_are_refused(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        logs.configure(level, fmt)


def _modules() -> Iterator[Path]:
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = [d for d in dirs if d not in {"__pycache__", "examples"}]
        yield from (Path(folder) / f for f in files if f.endswith(".py"))


def test_every_logger_of_the_project_is_named_for_its_module() -> None:
    """`logging.getLogger(__name__)` everywhere puts every logger under `agentslo.` (one namespace)."""
    wrong = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "getLogger"
                and node.args
                and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "__name__")
            ):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not wrong, "\n".join(wrong)
