"""`GET /v1/autonomy`: what an agent may do on its own, read from the budget recordings in Prometheus.

The rules generator records `agent_slo:autonomy_state:code` per agent and flow (the worst of its
governing SLOs); this reads it through the Prometheus HTTP API with `max by (agent, flow)`, so HA
pairs of Prometheus (duplicate series differing only in replica labels) collapse to the worst state.
Answers are cached for `autonomy.cache_seconds`. When Prometheus cannot answer, the reply is the
spec's `autonomy.fail_safe` state, marked `stale: true` with the reason, never an optimistic guess.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import aiohttp

from agentslo import names
from agentslo.exporter.config import ExporterConfig
from agentslo.spec import Spec

FAILURE_CACHE_S = 2.0  # how long a failed lookup is reused, so a dead Prometheus is not hammered


class PrometheusUnavailable(Exception):
    """Prometheus could not be asked, or did not answer usably; the message says why."""


class AutonomyReader:
    def __init__(self, specs: list[Spec], config: ExporterConfig):
        self.specs = {s.agent: s for s in specs}
        self.config = config
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            cfg = self.config
            ssl_arg: ssl.SSLContext | bool = True
            if cfg.prometheus_insecure:
                ssl_arg = False
            elif cfg.prometheus_ca_file:
                ssl_arg = ssl.create_default_context(cafile=cfg.prometheus_ca_file)
            headers = {"Authorization": f"Bearer {cfg.prometheus_token}"} if cfg.prometheus_token else {}
            auth = aiohttp.BasicAuth(*cfg.prometheus_basic_auth) if cfg.prometheus_basic_auth else None
            self._session = aiohttp.ClientSession(
                headers=headers,
                auth=auth,
                connector=aiohttp.TCPConnector(ssl=ssl_arg),
                timeout=aiohttp.ClientTimeout(total=cfg.prometheus_timeout_s),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.config.prometheus_url.rstrip('/')}/api/v1/query"  # type: ignore[union-attr]
        try:
            async with self._client().get(url, params={"query": promql}) as resp:
                if resp.status != 200:
                    raise PrometheusUnavailable(f"Prometheus answered HTTP {resp.status} to {promql!r}")
                payload = await resp.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise PrometheusUnavailable(
                f"cannot query Prometheus at {self.config.prometheus_url}: {type(exc).__name__}: {exc}"
            ) from None
        if payload.get("status") != "success":
            raise PrometheusUnavailable(f"Prometheus refused {promql!r}: {payload.get('error')}")
        return list(payload["data"]["result"])

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
        except PrometheusUnavailable as exc:
            answer = self._fail_safe(spec, flow, str(exc))
            ttl = min(FAILURE_CACHE_S, spec.autonomy.cache_seconds)
        self._cache[(agent, flow)] = (now + ttl, answer)
        return answer

    async def _fetch(self, spec: Spec, flow: str) -> dict[str, Any]:
        if not self.config.prometheus_url:
            raise PrometheusUnavailable("no Prometheus URL is configured (agent-slo serve --prometheus-url)")
        selector = f'{{{names.L_AGENT}="{spec.agent}",{names.L_FLOW}="{flow}"}}'
        by = f"{names.L_AGENT}, {names.L_FLOW}"
        state, remaining, burn = await asyncio.gather(
            self._query(f"max by ({by}) ({names.AUTONOMY_STATE}{selector})"),
            # Budget numbers: the worse of HA duplicates (least remaining, fastest burn).
            self._query(f"min by ({by}, {names.L_SLO}) ({names.ERROR_BUDGET_REMAINING}{selector})"),
            self._query(f"max by ({by}, {names.L_SLO}) ({names.burn_rate('1h')}{selector})"),
        )
        if not state:
            raise PrometheusUnavailable(
                f"Prometheus has no {names.AUTONOMY_STATE} series for agent={spec.agent}, flow={flow} "
                "(are the agent-slo rules loaded?)"
            )
        code = int(float(state[0]["value"][1]))
        code = min(max(code, 0), len(names.AUTONOMY_STATES) - 1)
        name = names.AUTONOMY_STATES[code]
        slos: dict[str, dict[str, Any]] = {}
        governing = set(spec.governing_slos())
        for series, key in ((remaining, "error_budget_remaining"), (burn, "burn_rate_1h")):
            for sample in series:
                slo = sample["metric"].get(names.L_SLO, "")
                if slo in governing:
                    slos.setdefault(slo, {"slo": slo})[key] = float(sample["value"][1])
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
            "evaluated_at": float(state[0]["value"][0]),
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
