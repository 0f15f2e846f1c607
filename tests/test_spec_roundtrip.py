"""Property: any spec the model accepts serialises to YAML and reloads to an equal model."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentslo.spec import SpecError, parse_spec

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
durations = st.sampled_from(["5m", "30m", "1h", "6h", "1d", "7d", "28d", "30d", "4w", "90d"])
thresholds = st.one_of(
    st.floats(min_value=0.01, max_value=60, allow_nan=False).map(lambda x: round(x, 3)),
    st.sampled_from(["1.2s", "4500ms", "2m", "0.5s"]),
)
objectives = st.one_of(
    st.floats(min_value=0.5, max_value=99.99, allow_nan=False).map(lambda x: round(x, 3)), st.just("auto")
)


def sli_strategy(judges: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    options = [
        st.just({"task": {}}),
        st.just({"escalation": {}}),
        st.just({"connection": {}}),
        st.just({"tool_calls": {}}),
        st.builds(
            lambda of, under: {"latency": {"of": of, "under": under}},
            st.sampled_from(["task", "turn", "first_response", "tool_turn"]),
            thresholds,
        ),
        st.builds(lambda usd: {"cost": {"under_usd": usd}}, st.floats(0.001, 10).map(lambda x: round(x, 4))),
    ]
    if judges:
        options.append(st.sampled_from(judges).map(lambda j: {"judge": j}))
    return st.one_of(options)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    flows = draw(
        st.dictionaries(
            names,
            st.one_of(
                st.just({}),
                st.builds(lambda r: {"risk": r}, st.sampled_from(["faq", "account", "billing", "medical"])),
            ),
            min_size=1,
            max_size=4,
        )
    )
    owners = draw(st.dictionaries(names, st.just({"team": "t"}), min_size=1, max_size=3))
    judges = draw(
        st.dictionaries(
            names,
            st.one_of(
                st.builds(
                    lambda th, sr: {
                        "type": "llm",
                        "model": "m",
                        "version": "1",
                        "rubric": "r",
                        "pass_threshold": th,
                        "sample_rate": sr,
                    },
                    st.floats(0, 1).map(lambda x: round(x, 3)),
                    st.floats(0, 1).map(lambda x: round(x, 3)),
                ),
                st.just({"type": "rule", "version": "2", "fail_if_contains": ["3-5 business days"]}),
            ),
            max_size=3,
        )
    )
    slos = draw(
        st.dictionaries(
            names,
            st.builds(
                lambda sli, obj, owner, period: {
                    "sli": sli,
                    "objective": obj,
                    "owner": owner,
                    **({"period": period} if period else {}),
                },
                sli_strategy(list(judges)),
                objectives,
                st.sampled_from(list(owners)),
                st.one_of(st.none(), durations),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return {
        "version": "agent-slo/v1",
        "agent": draw(names),
        "period": draw(durations),
        "owners": owners,
        "flows": flows,
        "judges": judges,
        "slos": slos,
        "exclusions": draw(st.lists(names, max_size=3, unique=True)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_accepted_spec_round_trips(data: dict[str, Any]) -> None:
    try:
        spec = parse_spec(yaml.safe_dump(data, sort_keys=False), "gen.yaml")
    except SpecError as exc:
        # Rejections must still be precise: every problem names a key path or the document.
        assert all(p.file == "gen.yaml" and p.line >= 1 for p in exc.problems)
        return
    reloaded = parse_spec(yaml.safe_dump(spec.dump(), sort_keys=False), "again.yaml")
    assert reloaded == spec
    assert reloaded.spec_hash == spec.spec_hash
    for slo in spec.slos:
        for flow in spec.flows_of(slo):
            assert 0 < spec.objective_for(slo, flow) < 100
