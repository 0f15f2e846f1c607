"""The SLO review: what history says about an agent's SLOs.

`history` reads Prometheus (bounded, through the core's client); `suggest` proposes objectives from
it, `backtest` replays the alerts a spec generates over it, and `report` writes the weekly review.
"""
