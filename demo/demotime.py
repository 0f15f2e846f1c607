"""Demo time: an SLO spec with its clock compressed, so a page arrives in minutes instead of an hour.

A real 30d budget pages on a full outage after about an hour (`page_fast` 1h/5m). The demo and the
end-to-end tests keep every objective and burn factor of the spec but give it a 1h period and
burn-rate windows 12x-150x shorter (through the spec's own `burn_rates` catalog), so the same rules,
the same Prometheus and the same Alertmanager fire for real, just sooner. Whatever uses it says so:
these are not production windows.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import Any, Final

import yaml

DEMO_PERIOD: Final = "1h"
# The design's 30d tiers with their factors, windows shortened: a full outage pages in ~1 minute.
DEMO_BURN_RATES: Final = {
    "page_fast": {"long": "2m", "short": "30s", "factor": 14.4},
    "page_slow": {"long": "6m", "short": "1m", "factor": 6},
    "ticket_fast": {"long": "12m", "short": "2m", "factor": 3},
    "ticket_slow": {"long": "30m", "short": "5m", "factor": 1},
}
# A burn alert needs this many events in its long window: a demo starts from an empty Prometheus, and
# two failures among the first five events are not an incident.
DEMO_MIN_EVENTS: Final = 60
LABEL: Final = (
    f"DEMO TIME: SLO period {DEMO_PERIOD}, burn-rate windows page_fast 2m/30s, page_slow 6m/1m, "
    "ticket_fast 12m/2m, ticket_slow 30m/5m (production: 30d, 1h/5m, 6h/30m, 1d/2h, 3d/6h)"
)


def compress(data: dict[str, Any]) -> dict[str, Any]:
    """The spec data with demo time: a 1h period everywhere, the demo burn-rate catalog, and at
    least DEMO_MIN_EVENTS events before a burn alert may fire."""
    out = dict(data)
    out["period"] = DEMO_PERIOD
    out["burn_rates"] = {k: dict(v) for k, v in DEMO_BURN_RATES.items()}
    alerting = dict(data.get("alerting") or {})
    out["alerting"] = alerting | {"min_events": max(int(alerting.get("min_events", 1)), DEMO_MIN_EVENTS)}
    out["slos"] = {
        name: {k: v for k, v in dict(slo).items() if k != "period"} for name, slo in data["slos"].items()
    }
    return out


def write_compressed(source: Path, target: Path, **changes: Any) -> Path:
    """Write a demo-time copy of the spec at `source` to `target`, with top-level `changes` applied.

    The spec's scenario files are copied beside the copy, at the same relative paths: a spec's
    scenario globs name files in its own folder, so the copy needs its own."""
    source, target = Path(source), Path(target)
    data = compress(yaml.safe_load(source.read_text(encoding="utf-8")))
    for key, value in changes.items():
        data[key] = value
    target.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (data.get("synthetic") or {}).get("scenarios", []):
        for found in glob.glob(str(source.parent / pattern), recursive=True):
            if not Path(found).is_relative_to(source.parent):
                continue  # outside the spec's folder: the scenario loader refuses it anyway
            relative = Path(found).relative_to(source.parent)
            (target.parent / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, target.parent / relative)
    target.write_text(f"# {LABEL}\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target
