"""The synthetic prober: scripted multi-turn scenarios against the agent, results into the exporter.

Scenario files are part of the spec contract and are loaded by `agentslo.scenario`; this package
plays them. `agent-slo probe SPEC... [--once] [--junit FILE]` is `synthetic.command`; in process:

    from agentslo.scenario import load_scenarios
    from agentslo.synthetic.runner import run_cycle
    from agentslo.synthetic.sinks import CallableSink

    results = await run_cycle(spec, load_scenarios(spec), sink=CallableSink(apply))

Modules: `targets` (openai-chat with scripted tool playback, generic HTTP JSON), `assertions`
(promptfoo-style checks), `rubric` (llm-rubric through `agentslo.judges`), `runner` (one scenario,
one cycle), `scheduler` (every interval, with jitter), `sinks` (exporter HTTP API or a callable),
`inprocess` (inside an aiohttp app), `junit` and `records`. The agent the demo, the benchmark and
the tests probe is the demo's CX agent (`agentslo.demo.agent`).
See synthetic/README.md for the scenario format.
"""
