"""`agent-slo build --target kubernetes`: what `kubectl kustomize` renders is valid Kubernetes (the
schemas `kubernetes-validate` ships), valid Prometheus Operator objects (the operator's own CRD
schemas, vendored in deploy/kubernetes/crds), rules promtool and vmalert accept, and dashboards equal
the generated files."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import re2
import yaml

from agentslo import cli, dashboards
from agentslo.bundle import configs, kubernetes, nginx
from agentslo.demo.servers import find_binary
from agentslo.spec import load_specs

ROOT = Path(__file__).resolve().parents[1]
SPECS = [str(ROOT / "examples" / "cx-support.slo.yaml"), str(ROOT / "examples" / "voice-booking.slo.yaml")]
CRDS = ROOT / "deploy" / "kubernetes" / "crds"
KUBECTL, PROMTOOL, VMALERT = find_binary("kubectl"), find_binary("promtool"), find_binary("vmalert")
OPERATOR_KINDS = ("PrometheusRule", "ServiceMonitor", "AlertmanagerConfig")


class _Loader(yaml.SafeLoader):
    """PyYAML (YAML 1.1) reads a bare `=` as its `value` tag; kubectl writes `matchType: =` bare."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl not installed (Debian: apt-get install kubectl)"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("k8s")
    assert cli.main(["build", *SPECS, "--target", "kubernetes", "-o", str(out), "--replicas", "3"]) == 0
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.load_all(result.stdout, Loader=_Loader) if doc]


def _of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _strict(schema: Any) -> Any:
    """The CRD schema refusing unknown fields: the API server would prune them silently (a typo'd
    field is just gone), so the test treats one as an error."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


def _go_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """CRD patterns are Go (RE2) syntax, such as a `(?i)` flag mid-expression (the weekdays of a time
    interval), which Python's re refuses: match them with RE2, as the API server does."""
    if validator.is_type(instance, "string") and not re2.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_CrdValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _go_pattern})


@pytest.fixture(scope="module")
def validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) → a validator of the operator's CRD schema for it."""
    out = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            out[(f"{group}/{version['name']}", kind)] = _CrdValidator(schema)
    return out


def test_every_core_object_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    core = [d for d in rendered if d["kind"] not in OPERATOR_KINDS]
    assert {d["kind"] for d in core} == {"ConfigMap", "Service", "StatefulSet", "Deployment"}
    for doc in core:
        # raises ValidationError naming the field; strict: unknown fields are errors too
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_operator_objects_validate_against_the_vendored_crd_schemas(
    rendered: list[dict[str, Any]], validators: dict[tuple[str, str], jsonschema.Draft7Validator]
) -> None:
    operator = [d for d in rendered if d["kind"] in OPERATOR_KINDS]
    assert sorted({d["kind"] for d in operator}) == sorted(OPERATOR_KINDS)
    for doc in operator:
        errors = [e.message for e in validators[(doc["apiVersion"], doc["kind"])].iter_errors(doc)]
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {errors[:3]}"


def test_the_crd_check_refuses_a_misspelt_field(
    rendered: list[dict[str, Any]], validators: dict[tuple[str, str], jsonschema.Draft7Validator]
) -> None:
    monitor = copy.deepcopy(_of(rendered, "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    validator = validators[(monitor["apiVersion"], "ServiceMonitor")]
    assert any("honourLabels" in e.message for e in validator.iter_errors(monitor))


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
def test_prometheusrule_groups_pass_promtool(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    assert PROMTOOL is not None
    for rule in _of(rendered, "PrometheusRule"):
        path = tmp_path / f"{rule['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
        result = subprocess.run(
            [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
    alerts = [
        r for rule in _of(rendered, "PrometheusRule") for g in rule["spec"]["groups"] for r in g["rules"]
    ]
    # the operator scopes the AlertmanagerConfig's routes to alerts of its own namespace
    assert all(r["labels"]["namespace"] == "monitoring" for r in alerts if "alert" in r)


def test_dashboard_configmaps_hold_the_generated_files_for_the_sidecar(
    rendered: list[dict[str, Any]],
) -> None:
    expected = dashboards.generate_files(load_specs(SPECS))
    maps = [d for d in _of(rendered, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(maps) == len(expected)
    assert {k: v for cm in maps for k, v in cm["data"].items()} == expected


def test_alertmanagerconfig_routes_as_alertmanager_yml(rendered: list[dict[str, Any]]) -> None:
    (amc,) = _of(rendered, "AlertmanagerConfig")
    plain = configs.alertmanager_config(load_specs(SPECS))

    def receivers(route: dict[str, Any]) -> list[str]:
        return [route["receiver"], *(r for sub in route.get("routes", []) for r in receivers(sub))]

    assert receivers(amc["spec"]["route"]) == receivers(plain["route"])
    assert [r["name"] for r in amc["spec"]["receivers"]] == [r["name"] for r in plain["receivers"]]
    first = amc["spec"]["route"]["routes"][0]
    assert first["matchers"] == [{"name": "agent", "value": "cx-support", "matchType": "="}]


def test_exporter_statefulset_has_a_volume_per_replica_probes_and_the_token_secret(
    rendered: list[dict[str, Any]],
) -> None:
    (sts,) = _of(rendered, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["env"] == [
        {
            "name": "AGENT_SLO_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "agent-slo-token", "key": "token"}},
        }
    ]
    assert "--db" in container["args"]
    # every spec and scenario file is mounted where the args name it
    items = {i["path"] for i in sts["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]}
    assert {"cx-support.slo.yaml", "voice-booking.slo.yaml", "scenarios/refund.yaml"} <= items
    (monitor,) = _of(rendered, "ServiceMonitor")  # one scrape job for both specs
    selected = [
        s
        for s in _of(rendered, "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in selected] == ["agent-slo-exporter"]  # never scraped twice


def test_router_hashes_writes_over_every_replica_by_name() -> None:
    conf = kubernetes.router_conf(3)
    for i in range(3):
        assert f"server agent-slo-exporter-{i}.agent-slo-exporter-headless:9120 resolve max_fails=0;" in conf
    assert "hash $agent_slo_route_key consistent;" in conf


def test_the_shipped_nginx_config_is_the_generated_one() -> None:
    assert (ROOT / "deploy" / "nginx" / "agent-slo.conf").read_text(encoding="utf-8") == nginx.shipped()


def test_zero_replicas_is_refused_with_the_flag_named() -> None:
    with pytest.raises(ValueError, match="--replicas must be at least 1"):
        kubernetes.generate(load_specs(SPECS[:1]), replicas=0)


def test_business_hours_reach_the_alertmanager_config_in_utc_only() -> None:
    """The voice example's business hours (UTC) become muteTimeIntervals its synthetic routes name;
    a zone the CRD cannot express is refused, never silently shifted."""
    voice = load_specs([SPECS[1]])
    spec = kubernetes.alertmanager_config(voice, "http://hooks")["spec"]
    (interval,) = spec["muteTimeIntervals"]
    assert interval["timeIntervals"][0]["times"] == [{"startTime": "07:00", "endTime": "17:00"}]
    children = spec["route"]["routes"][0]["routes"][0]["routes"]
    assert children[0]["activeTimeIntervals"] == [interval["name"]] and children[0]["continue"] is True
    assert children[1]["muteTimeIntervals"] == [interval["name"]]
    hours = voice[0].synthetic.business_hours.model_copy(update={"time_zone": "Europe/Berlin"})
    berlin = voice[0].model_copy(
        update={"synthetic": voice[0].synthetic.model_copy(update={"business_hours": hours})}
    )
    with pytest.raises(ValueError, match="no time zone"):
        kubernetes.alertmanager_config([berlin], "http://hooks")
