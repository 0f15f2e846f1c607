"""`agent-slo backtest` against the Prometheus route, same history, same run.

    python benchmarks/review_backtest.py                 # 30 days, 100 SLO x flow pairs, 5 replicas
    python benchmarks/review_backtest.py --days 3 --slos 5   # a quick look

Setup (not timed): one spec with `--slos` SLOs x 4 flows (objective 99.5), the traffic model of
`benchmarks/rules_cost.py` (hourly rates and error ratios with rare bad hours), five replicas'
`agent_slo_events_total` counters (counted series) sampled every `--step` seconds (150 s: two samples
in every 5m window, as `increase()` needs) over `--days`, written with `promtool tsdb
create-blocks-from openmetrics` one day at a time, and a Prometheus 2.42 serving them.

Timed, each as a child process (wall time; peak RSS: the child's VmHWM, polled):
- backtest: `agent-slo backtest SPEC --days N --json` against that Prometheus: it reads every raw
  sample of the range and replays every SLO alert the spec generates (review.replay);
- the Prometheus route, first level only: `promtool tsdb create-blocks-from rules` evaluating the
  generated rules that read raw counters (the raw-window increases at the rules' 1m interval, and the
  5m bucket increases once per 5 minutes) over the same range against the same Prometheus. The long
  windows, ratios and alerts would need three more levels (each a Prometheus restarted on the
  previous level's blocks) and promtool cannot evaluate alerts or `for:` at all, so this is a lower
  bound of that route's cost: a ratio under 1 against it is under 1 against the whole route.

The Prometheus server answers both routes; its own peak RSS is printed after each.

Measured on 2 shared cores (2026-12-06, three runs, blocks reused with --data): backtest 40.8-45.6 s,
551-552 MiB peak; promtool's first level 198-218 s, 2,344-2,467 MiB; ratio 0.21-0.22x wall,
0.22-0.23x memory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentslo import names
from agentslo.demo.backfill import bucket_rule, create_blocks
from agentslo.demo.servers import Prometheus
from agentslo.rules._plan import Plan
from agentslo.rules.generate import generate_files
from benchmarks.attack_common import peak_rss_mib
from benchmarks.rules_cost import AGENT, DAY, JOB, Traffic, _spec

ROOT = Path(__file__).resolve().parent.parent
FLOWS = 4
POLL_S = 0.1  # how often a child's peak RSS is read


def _openmetrics(traffic: Traffic, replicas: int, lo: int, hi: int, step: int) -> str:
    """Counted event counters of every pair, outcome and replica for sample times in [lo, hi)."""
    family = names.EVENTS_TOTAL.removesuffix("_total")
    lines = [f"# TYPE {family} counter"]
    first = -(-lo // step) * step
    times = range(first, hi, step)
    for slo, flow in traffic.pairs:
        for outcome in (names.GOOD, names.BAD):
            values = [traffic.count((slo, flow), outcome, t) / replicas for t in times]
            base = f'agent="{AGENT}",exclusion="",flow="{flow}",job="{JOB}",outcome="{outcome}",slo="{slo}"'
            for replica in range(replicas):
                name = f'{names.EVENTS_TOTAL}{{{base},instance="r{replica}"}}'
                lines += [f"{name} {v:.3f} {t}" for t, v in zip(times, values, strict=True)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _backfill(traffic: Traffic, args: argparse.Namespace, start: int, data: Path) -> None:
    """One promtool run per day, two at a time (promtool re-reads its input for every 2h block)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        days = range(args.days)
        texts = (
            _openmetrics(traffic, args.replicas, start + d * DAY, start + (d + 1) * DAY + 1, args.step)
            for d in days
        )
        list(pool.map(lambda text: create_blocks(text, data), texts))


def _timed(argv: list[str], stdout: Any = subprocess.DEVNULL) -> tuple[float, float, int]:
    """Run a child; (wall seconds, peak RSS MiB, exit status). The peak is the child's own VmHWM,
    polled: wait4's ru_maxrss would count the benchmark's own memory (Linux keeps the parent's
    high-water mark across fork and exec)."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe nobody reads while it runs
        began = time.monotonic()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=errors)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid))
            time.sleep(POLL_S)
        wall = time.monotonic() - began
        if proc.returncode != 0:
            errors.seek(0)
            print(errors.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return wall, peak, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--slos", type=int, default=25, help="SLOs (x 4 flows = pairs)")
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--step", type=int, default=150, help="seconds between stored samples")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="keep the backfilled blocks here and reuse them when run again the same day",
    )
    args = parser.parse_args(argv)
    spec = _spec(args.slos, FLOWS)
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        work = Path(tmp)
        end = int(time.time() // DAY * DAY)
        start = end - args.days * DAY
        traffic = Traffic([(s, f) for s in spec.slos for f in spec.flows], start, args.days * 24 + 1)
        began = time.monotonic()
        data = Path(args.data) if args.data else work / "data"
        stamp = data / f"bench-{args.days}d-{args.slos}s-{args.replicas}r-{args.step}s-{end}"
        if not stamp.exists():
            shutil.rmtree(data, ignore_errors=True)
            _backfill(traffic, args, start, data)
            stamp.touch()
        samples = len(traffic.pairs) * 2 * args.replicas * (args.days * DAY // args.step)
        print(
            f"history: {args.days} days, {len(traffic.pairs)} pairs, {args.replicas} replicas,"
            f" {samples:,} samples every {args.step}s, blocks in {time.monotonic() - began:.0f}s"
        )
        spec_path = work / "bench.slo.yaml"
        spec_path.write_text(yaml.safe_dump(spec.dump(), sort_keys=False), encoding="utf-8")
        with Prometheus.start(work / "prom", {"global": {}}, data_dir=data, retention="90d") as prom:
            backtest = [
                sys.executable, "-m", "agentslo.cli", "backtest", str(spec_path), "--prometheus", prom.url,
                "--days", str(args.days), "--end", str(end), "--json", "--timeout", "600",
            ]  # fmt: skip
            with (work / "alerts.json").open("w") as out:
                b_wall, b_rss, b_code = _timed(backtest, stdout=out)
            alerts = len(yaml.safe_load((work / "alerts.json").read_text() or "{}").get("alerts", []))
            server_after_backtest = peak_rss_mib(prom.proc.pid)
            print(f"backtest: {b_wall:.1f}s, peak RSS {b_rss:.0f} MiB, exit {b_code}, {alerts} alerts")
            # The Prometheus route's first level: the generated rules that read raw counters.
            plan = Plan(spec)
            rules = yaml.safe_load(next(iter(generate_files([spec]).values())))["groups"][0]["rules"]
            raw = {names.events_rate(w) for w in plan.windows if plan.is_raw(w)} | {names.events_rate("5m")}
            level1 = [r for r in rules if r.get("record") in raw]
            buckets = [bucket_rule(generate_files([spec]), AGENT)]
            p_wall = p_rss = 0.0
            for name, group, interval in (("raw windows", level1, 60), ("5m buckets", buckets, 300)):
                path = work / f"{name.replace(' ', '-')}.yaml"
                path.write_text(
                    yaml.safe_dump({"groups": [{"name": name, "rules": group}]}), encoding="utf-8"
                )
                argv_ = [
                    "promtool", "tsdb", "create-blocks-from", "rules", f"--start={start}", f"--end={end}",
                    f"--url={prom.url}", f"--eval-interval={interval}s",
                    f"--output-dir={work / ('out-' + path.stem)}", str(path),
                ]  # fmt: skip
                wall, rss, code = _timed(argv_)
                print(
                    f"promtool create-blocks-from rules ({name}, {len(group)} rules): {wall:.1f}s,"
                    f" peak RSS {rss:.0f} MiB, exit {code}"
                )
                p_wall += wall
                p_rss = max(p_rss, rss)
            server_after = peak_rss_mib(prom.proc.pid)
        print(
            f"Prometheus server peak RSS: {server_after_backtest:.0f} MiB after the backtest,"
            f" {server_after:.0f} MiB after promtool"
        )
        print(
            f"ratio backtest / Prometheus route (first level only): wall {b_wall / p_wall:.2f}x,"
            f" client peak RSS {b_rss / p_rss:.2f}x (target <= 1x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
