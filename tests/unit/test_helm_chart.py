"""The Helm chart: values against values.schema.json, `helm lint`, and the default render checked
against the gateway's own CLI, settings and registry loader."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml

from gateway.cli import make_parser
from gateway.registry import load_registry
from gateway.settings import Settings
from tests.chart import (
    CHART,
    NAMESPACE,
    ROOT,
    Rendered,
    container,
    expand,
    helm,
    helm_binary,
    literal_env,
    render,
    value_args,
)

needs_helm = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
SETTINGS_FIELDS = {f.name for f in msgspec.structs.fields(Settings)}
CI_VALUES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = (ROOT / "pyproject.toml").read_text()
    assert chart["apiVersion"] == "v2" and chart["name"] == "chungus"
    assert chart["kubeVersion"].startswith(">=1.")
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert f'version = "{chart["appVersion"]}"' in project  # the image tag defaults to appVersion


@pytest.mark.parametrize("ci_file", ["", *CI_VALUES])
def test_values_match_the_schema(values: dict, schema: dict, ci_file: str) -> None:
    override = yaml.safe_load((CHART / "ci" / ci_file).read_text()) if ci_file else {}
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(merged(values, override), schema)


@pytest.mark.parametrize(("path", "bad"), [
    ("gateway.replicaCount", 0), ("gateway.auth.adminKey", "not-a-key"),
    ("gateway.unknownKey", 1), ("triton.ports.grpc", 70000), ("triton.image.pullPolicy", "Sometimes"),
    ("triton.mpiWorldSize", 0), ("gateway.config", {"admin_key": "x"}), ("gateway.config", {"Log-Level": "x"}),
    ("gateway.tritonUrls", ["no-port"]), ("gateway.database.url", "mysql://db"),
    ("postgresql.auth.password", "p@ss/word"), ("ingress.hosts", [{"host": "a", "paths": [{"path": "x"}]}]),
    ("serviceMonitor.interval", "15 seconds"), ("triton.shmSizeLimit", "8 gigs"),
])
def test_schema_rejects_bad_values(values: dict, schema: dict, path: str, bad: object) -> None:
    broken = copy.deepcopy(values)
    *parents, last = path.split(".")
    target = broken
    for key in parents:
        target = target[key]
    target[last] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _keys_with_lines(node: yaml.Node, schema: dict, path: str = "") -> list[tuple[str, int]]:
    """(path, line) of every values key that the schema declares as a chart setting."""
    found: list[tuple[str, int]] = []
    props = schema.get("properties")
    if not isinstance(node, yaml.MappingNode) or props is None:
        return found
    for key_node, value_node in node.value:
        key = f"{path}.{key_node.value}".lstrip(".")
        found.append((key, key_node.start_mark.line))
        found += _keys_with_lines(value_node, props.get(key_node.value, {}), key)
    return found


def test_every_value_has_a_comment(schema: dict) -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    resolved = json.loads(json.dumps(schema))

    def deref(node: dict) -> dict:
        ref = node.get("$ref")
        return deref(resolved["definitions"][ref.rsplit("/", 1)[1]]) if ref else node

    def walk(node: dict) -> dict:
        node = deref(node)
        if "properties" in node:
            node = {**node, "properties": {k: walk(v) for k, v in node["properties"].items()}}
        return node

    keys = _keys_with_lines(yaml.compose(text), walk(resolved))
    assert len(keys) > 100
    missing = [key for key, line in keys if not lines[line - 1].lstrip().startswith("#")]
    assert not missing, f"values without a comment above them: {missing}"


def test_optional_features_are_off_by_default(values: dict) -> None:
    for feature in ("redis", "postgresql", "autoscaling", "serviceMonitor", "networkPolicy", "ingress"):
        assert values[feature]["enabled"] is False, feature
    assert values["autoscaling"]["prometheusRule"]["enabled"] is False


def test_config_keys_are_gateway_settings(values: dict, schema: dict) -> None:
    assert set(values["gateway"]["config"]) <= SETTINGS_FIELDS
    reserved = schema["properties"]["gateway"]["properties"]["config"]["propertyNames"]["not"]["enum"]
    assert set(reserved) <= SETTINGS_FIELDS


@needs_helm
@pytest.mark.parametrize("ci_file", ["", *CI_VALUES])
def test_helm_lint_strict(ci_file: str) -> None:
    args = ["-f", str(CHART / "ci" / ci_file)] if ci_file else []
    out = helm("lint", "--strict", str(CHART), *args).stdout
    assert "0 chart(s) failed" in out


@pytest.fixture(scope="module")
def default() -> Rendered:
    if helm_binary() is None:
        pytest.skip("no helm binary (make install fetches it)")
    return render()


def test_default_render_has_the_core_objects_only(default: Rendered) -> None:
    assert default.kinds() == sorted([
        "ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "PodDisruptionBudget", "Secret",
        "Service", "Service", "ServiceAccount", "StatefulSet"])


def test_gateway_command_and_env_work_with_the_real_cli(default: Rendered) -> None:
    gateway = container(default.get("Deployment", "t-chungus-gateway"), "gateway")
    env = literal_env(gateway)
    assert {n for n in env if n.startswith("CHUNGUS_")} <= {f"CHUNGUS_{f.upper()}" for f in SETTINGS_FIELDS}
    args = make_parser().parse_args([expand(a, env) for a in gateway["args"]])
    assert args.command == "serve" and args.external_triton == env["CHUNGUS_TRITON_URLS"]
    settings = Settings.from_env(env | {"CHUNGUS_ADMIN_KEY": "sk-chungus-x"})
    assert (settings.host, settings.port) == ("0.0.0.0", gateway["ports"][0]["containerPort"])
    assert settings.database_url.startswith("sqlite+aiosqlite:////data/")
    assert {m["mountPath"] for m in gateway["volumeMounts"]} >= {"/data", "/tmp", settings.registry_path}
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"
    secret = default.get("Secret", "t-chungus-gateway")
    assert base64.b64decode(secret["data"]["admin-key"]).decode().startswith("sk-chungus-")


def test_registry_configmap_loads_and_its_files_are_mounted(default: Rendered, tmp_path: Path) -> None:
    toml = default.get("ConfigMap", "t-chungus-registry")["data"]["registry.toml"]
    (tmp_path / "registry.toml").write_text(toml)
    entry = load_registry(tmp_path / "registry.toml").models[0]
    assert entry.id == "llama-3.1-8b-instruct"
    gateway = container(default.get("Deployment", "t-chungus-gateway"), "gateway")
    mounts = {m["name"]: m for m in gateway["volumeMounts"]}
    registry_path = Path(literal_env(gateway)["CHUNGUS_REGISTRY_PATH"])
    assert mounts["registry"]["mountPath"] == str(registry_path)
    for relative in (entry.chat_template, entry.tokenizer):
        resolved = entry.resolve(registry_path.parent, relative)
        assert str(resolved).startswith(mounts["model-store"]["mountPath"] + "/"), resolved
    assert mounts["model-store"]["subPath"] == "models" and mounts["model-store"]["readOnly"] is True


def test_gateway_reaches_every_triton_pod(default: Rendered) -> None:
    sts = default.get("StatefulSet", "t-chungus-triton")
    service = default.get("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    grpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    env = literal_env(container(default.get("Deployment", "t-chungus-gateway"), "gateway"))
    expected = [f"t-chungus-triton-{i}.t-chungus-triton.{NAMESPACE}.svc:{grpc}"
                for i in range(sts["spec"]["replicas"])]
    assert env["CHUNGUS_TRITON_URLS"].split(",") == expected


def test_triton_pod_follows_nvidia_conventions(default: Rendered) -> None:
    triton = container(default.get("StatefulSet", "t-chungus-triton"), "triton")
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-trtllm-python-py3", triton["image"])
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["args"][:2] == ["tritonserver", "--model-repository=/models/model_repository"]
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {"name": "shm", "mountPath": "/dev/shm"} in triton["volumeMounts"]


def test_selectors_are_stable_and_match_their_pods(default: Rendered) -> None:
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in default.workloads()}
    for workload in default.workloads():
        selector = workload["spec"]["selector"]["matchLabels"]
        assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
        assert selector.items() <= pods[workload["metadata"]["name"]].items()
    for obj in default.of_kind("Service") + default.of_kind("PodDisruptionBudget"):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert len([n for n, labels in pods.items() if selector.items() <= labels.items()]) == 1


def test_helm_enforces_the_schema_and_the_chart_rules() -> None:
    if helm_binary() is None:
        pytest.skip("no helm binary (make install fetches it)")
    cases = [(("gateway.replicaCount=0",), "minimum"),
             (("triton.mpiWorldSize=4", "triton.gpusPerPod=2"), "cannot exceed triton.gpusPerPod"),
             (("triton.enabled=false",), "set gateway.tritonUrls"),
             (("triton.gpuProducts={H100}", "triton.affinity.nodeAffinity.x=y"), "not both")]
    for sets, message in cases:
        proc = helm("template", "t", str(CHART), *value_args(sets=sets), check=False)
        assert proc.returncode != 0 and message in proc.stderr, (sets, proc.stderr)
