"""`GET /v1/autonomy`: what an agent may do on its own, read from the budget recordings in Prometheus.

The rules generator records `agent_slo:autonomy_state:code` per agent and flow (the worst of its
governing SLOs); this reads it with the core's Prometheus client (`agentslo.prometheus`, awaited
on the event loop) as `max by (agent, flow)`, so HA pairs of Prometheus (duplicate series differing
only in replica labels) collapse to the worst state.
Answers are cached for `autonomy.cache_seconds`. When Prometheus cannot answer, the reply is the
spec's `autonomy.fail_safe` state, marked `stale: true` with the reason, never an optimistic guess.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentslo import names
from agentslo.exporter.config import ExporterConfig
from agentslo.prometheus import PrometheusClient, PrometheusError
from agentslo.spec import Spec

FAILURE_CACHE_S = 2.0  # how long a failed lookup is reused, so a dead Prometheus is not hammered


class NoAutonomyState(Exception):
    """Prometheus answered, but holds no autonomy state to read (or none is configured)."""


class AutonomyReader:
    def __init__(self, specs: list[Spec], config: ExporterConfig):
        self.specs = {s.agent: s for s in specs}
        self.config = config
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._prometheus = (
            PrometheusClient(
                config.prometheus_url,
                timeout=config.prometheus_timeout_s,
                token=config.prometheus_token,
                basic_auth=config.prometheus_basic_auth,
                ca_file=config.prometheus_ca_file,
                insecure=config.prometheus_insecure,
            )
            if config.prometheus_url
            else None
        )

    async def close(self) -> None:
        if self._prometheus is not None:
            await self._prometheus.aclose()

    async def state(self, agent: str, flow: str) -> dict[str, Any]:
        """The autonomy answer for one agent and flow (cached); the caller validated both names."""
        now = time.monotonic()
        cached = self._cache.get((agent, flow))
        if cached is not None and cached[0] > now:
            return cached[1]
        spec = self.specs[agent]
        try:
            answer = await self._fetch(spec, flow)
            ttl = spec.autonomy.cache_seconds
        except (PrometheusError, NoAutonomyState) as exc:
            reason = f"cannot query Prometheus: {exc}" if isinstance(exc, PrometheusError) else str(exc)
            answer = self._fail_safe(spec, flow, reason)
            ttl = min(FAILURE_CACHE_S, spec.autonomy.cache_seconds)
        self._cache[(agent, flow)] = (now + ttl, answer)
        return answer

    async def _fetch(self, spec: Spec, flow: str) -> dict[str, Any]:
        prometheus = self._prometheus
        if prometheus is None:
            raise NoAutonomyState("no Prometheus URL is configured (agent-slo serve --prometheus-url)")
        selector = f'{{{names.L_AGENT}="{spec.agent}",{names.L_FLOW}="{flow}"}}'
        by = f"{names.L_AGENT}, {names.L_FLOW}"
        state, remaining, burn = await asyncio.gather(
            prometheus.aquery(f"max by ({by}) ({names.AUTONOMY_STATE}{selector})"),
            # Budget numbers: the worse of HA duplicates (least remaining, fastest burn).
            prometheus.aquery(f"min by ({by}, {names.L_SLO}) ({names.ERROR_BUDGET_REMAINING}{selector})"),
            prometheus.aquery(f"max by ({by}, {names.L_SLO}) ({names.burn_rate('1h')}{selector})"),
        )
        if not state:
            raise NoAutonomyState(
                f"Prometheus has no {names.AUTONOMY_STATE} series for agent={spec.agent}, flow={flow} "
                "(are the agent-slo rules loaded?)"
            )
        code = int(state[0].value)
        code = min(max(code, 0), len(names.AUTONOMY_STATES) - 1)
        name = names.AUTONOMY_STATES[code]
        slos: dict[str, dict[str, Any]] = {}
        governing = set(spec.governing_slos())
        for series, key in ((remaining, "error_budget_remaining"), (burn, "burn_rate_1h")):
            for sample in series:
                slo = sample.labels.get(names.L_SLO, "")
                if slo in governing:
                    slos.setdefault(slo, {"slo": slo})[key] = sample.value
        return {
            "agent": spec.agent,
            "flow": flow,
            "state": name,
            "code": code,
            "allowed_actions": list(names.AUTONOMY_ACTIONS[name]),
            "stale": False,
            "reason": None,
            "governed_by": sorted(governing),
            "slos": [slos[s] for s in sorted(slos)],
            "evaluated_at": state[0].timestamp,
        }

    @staticmethod
    def _fail_safe(spec: Spec, flow: str, reason: str) -> dict[str, Any]:
        name = spec.autonomy.fail_safe
        return {
            "agent": spec.agent,
            "flow": flow,
            "state": name,
            "code": names.AUTONOMY_STATES.index(name),
            "allowed_actions": list(names.AUTONOMY_ACTIONS[name]),
            "stale": True,
            "reason": reason,
            "governed_by": sorted(spec.governing_slos()),
            "slos": [],
            "evaluated_at": None,
        }
