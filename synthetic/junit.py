"""JUnit XML for `agent-slo probe --once --junit FILE`: a suite per scenario, a test case per assertion.

CI systems (GitLab, Jenkins, GitHub test reporters) show each assertion with what was expected and
what came; a target failure (unreachable, timeout, malformed reply) is an `<error>` of the `run` case,
and the assertions it prevented are `<skipped>`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from agentslo.synthetic.records import AssertionResult, ScenarioResult


def _cases(results: Iterable[AssertionResult], prefix: str = "") -> Iterable[tuple[str, AssertionResult]]:
    for r in results:
        yield f"{prefix}{r.scope}: {r.label}", r
        yield from _cases(r.children, f"{prefix}{r.scope}: {r.label} / ")


def junit_xml(results: Sequence[ScenarioResult]) -> ET.ElementTree:
    """The JUnit document for one probe pass."""
    root = ET.Element("testsuites", name="agent-slo probe")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for res in results:
        suite = ET.SubElement(
            root, "testsuite", name=f"{res.agent}/{res.name}", timestamp=_iso(res.finished_at)
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("agent", res.agent),
            ("flow", res.flow),
            ("scenario", res.name),
            ("source", res.scenario.source),
            ("session_id", res.session_id),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        classname = f"{res.agent}.{res.flow}.{res.name}"
        run = ET.SubElement(suite, "testcase", classname=classname, name="run", time=f"{res.duration_s:.3f}")
        counts["tests"] += 1
        if res.error:
            ET.SubElement(
                run, "error", message=res.error, type="ProberError" if res.internal else "TargetError"
            ).text = res.error
            counts["errors"] += 1
        for name, r in _cases(res.assertions):
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
            counts["tests"] += 1
            if r.skipped:
                ET.SubElement(case, "skipped", message=r.message)
                counts["skipped"] += 1
            elif not r.passed:
                ET.SubElement(
                    case, "failure", message=r.message, type=r.type
                ).text = f"{r.message}\nscore={r.score:.3f} weight={r.weight:g}"
                counts["failures"] += 1
            ET.SubElement(
                case, "system-out"
            ).text = f"{'PASS' if r.passed else 'FAIL'} score={r.score:.3f}: {r.message}"
        suite.set("time", f"{res.duration_s:.3f}")
        for kind, count in counts.items():
            suite.set(kind, str(count))
            totals[kind] += count
    for kind, count in totals.items():
        root.set(kind, str(count))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[ScenarioResult], path: str) -> None:
    junit_xml(results).write(path, encoding="utf-8", xml_declaration=True)


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
