"""The Helm chart: values against values.schema.json, `helm lint`, and the default render checked
against the gateway's own CLI, settings, registry loader and chat template renderer."""

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

from gateway.chat.templates import compile_template
from gateway.chat.templates import render as render_chat
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
    render_error,
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
    ("triton.workload", "DaemonSet"), ("triton.multiNode", {"enabled": True, "nodes": 1}),
    ("triton.runtimeClassName", "Nvidia_Runtime"), ("redis.auth.password", "p@ss"),
    ("gateway.registry", {"source": "volume"}), ("gateway.registry", {"source": "values", "models": [{"id": "x"}]}),
    ("gateway.registry", {"source": "values", "models": [{"id": "x", "triton_model": "y", "Chat-Template": "a"}]}),
    ("engines.source", "nfs"), ("engines.s3.url", "https://bucket"), ("ingress.controller", "envoy"),
    ("gateway.terminationGracePeriodSeconds", -1), ("triton.sidecars", [{"image": "x"}]),
    ("postgresql.topologySpreadConstraints", [{"maxSkew": 1}]),
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


def test_optional_features_are_off_and_safety_on_by_default(values: dict) -> None:
    for feature in ("autoscaling", "serviceMonitor", "ingress"):
        assert values[feature]["enabled"] is False, feature
    assert values["autoscaling"]["prometheusRule"]["enabled"] is False
    assert values["gateway"]["autoscaling"]["enabled"] is False and values["triton"]["multiNode"]["enabled"] is False
    # Secure and consistent by default: shared stores for the 2 gateway replicas, Triton closed.
    assert values["gateway"]["replicaCount"] == 2
    assert values["redis"]["enabled"] is values["postgresql"]["enabled"] is values["networkPolicy"]["enabled"] is True


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
        "ConfigMap", "Deployment", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "Pod",
        "PodDisruptionBudget", "PodDisruptionBudget", "Secret", "Secret", "Secret", "Service", "Service",
        "Service", "Service", "ServiceAccount", "StatefulSet", "StatefulSet", "StatefulSet"])


def test_gateway_command_and_env_work_with_the_real_cli(default: Rendered) -> None:
    gateway = container(default.get("Deployment", "t-chungus-gateway"), "gateway")
    env = literal_env(gateway)
    assert {n for n in env if n.startswith("CHUNGUS_")} <= {f"CHUNGUS_{f.upper()}" for f in SETTINGS_FIELDS}
    args = make_parser().parse_args([expand(a, env) for a in gateway["args"]])
    assert args.command == "serve" and args.external_triton == env["CHUNGUS_TRITON_URLS"]
    settings = Settings.from_env(env | {"CHUNGUS_ADMIN_KEY": "sk-chungus-x"})
    assert (settings.host, settings.port) == ("0.0.0.0", gateway["ports"][0]["containerPort"])
    assert settings.database_url == "postgresql+asyncpg://chungus:$(POSTGRES_PASSWORD)@t-chungus-postgresql:5432/chungus"
    assert settings.redis_url == "redis://:$(REDIS_PASSWORD)@t-chungus-redis:6379/0"
    assert settings.max_body_bytes == 20 * 1024 * 1024 and settings.triton_timeout_s == 600
    registry_dir = str(Path(settings.registry_path).parent)
    assert {m["mountPath"] for m in gateway["volumeMounts"]} >= {"/data", "/tmp", registry_dir}
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"
    secret = default.get("Secret", "t-chungus-gateway")
    assert base64.b64decode(secret["data"]["admin-key"]).decode().startswith("sk-chungus-")


def test_gateway_finds_triton_pods_through_the_headless_service(default: Rendered) -> None:
    sts = default.get("StatefulSet", "t-chungus-triton")
    service = default.get("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    grpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    env = literal_env(container(default.get("Deployment", "t-chungus-gateway"), "gateway"))
    assert env["CHUNGUS_TRITON_URLS"] == f"dns://t-chungus-triton.{NAMESPACE}.svc.cluster.local:{grpc}"
    other = render(sets=("clusterDomain=k8s.internal", "triton.ports.grpc=9001"))
    env = literal_env(container(other.get("Deployment", "t-chungus-gateway"), "gateway"))
    assert env["CHUNGUS_TRITON_URLS"] == f"dns://t-chungus-triton.{NAMESPACE}.svc.k8s.internal:9001"


LLAMA3_PROMPT = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_registry_configmap_loads_without_the_model_volume(default: Rendered, tmp_path: Path) -> None:
    files = default.get("ConfigMap", "t-chungus-registry")["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    entry = load_registry(tmp_path / "registry.toml").models[0]
    assert (entry.id, entry.triton_model, entry.contract, entry.text_mode) == (
        "llama-3.1-8b-instruct", "tensorrt_llm_bls", "bls", "cumulative")
    assert (entry.bos_token, entry.eos_token, entry.max_tokens_limit) == ("<|begin_of_text|>", "<|eot_id|>", 8191)
    template = entry.resolve(tmp_path, entry.chat_template)
    assert template is not None and template.parent == tmp_path
    prompt = render_chat(compile_template(template.read_text()), [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], bos_token=entry.bos_token)
    assert prompt == LLAMA3_PROMPT
    deployment = default.get("Deployment", "t-chungus-gateway")
    gateway = container(deployment, "gateway")
    registry_path = Path(literal_env(gateway)["CHUNGUS_REGISTRY_PATH"])
    mounts = {m["name"]: m for m in gateway["volumeMounts"]}
    assert mounts["registry"]["mountPath"] == str(registry_path.parent) and "subPath" not in mounts["registry"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "registry", "configMap": {"name": "t-chungus-registry"}} in volumes
    assert not [v for v in volumes if "persistentVolumeClaim" in v]  # no model volume: no RWX needed


def test_registry_values_render_every_field_type(tmp_path: Path) -> None:
    models = [
        {"id": "llava", "triton_model": "ensemble", "vision": True, "default_temperature": 0.7, "max_images": 2,
         "bos_token": '<s> "q" \\ & \u00e9', "image_processor": {"resize_mode": "fixed", "height": 384,
                                                        "image_mean": [0.5, 0.5, 0.5]}},
        {"id": "e5", "kind": "embedding", "contract": "embedding", "triton_model": "e5", "embedding_dim": 1024}]
    values = tmp_path / "models.yaml"
    values.write_text(yaml.safe_dump({"gateway": {"registry": {"models": models}}}))
    rendered = render((str(values),))
    (tmp_path / "registry.toml").write_text(rendered.get("ConfigMap", "t-chungus-registry")["data"]["registry.toml"])
    llava, e5 = load_registry(tmp_path / "registry.toml").models
    assert (llava.vision, llava.default_temperature, llava.max_images) == (True, 0.7, 2)
    assert llava.bos_token == models[0]["bos_token"] and llava.chat_template is None
    assert llava.image_processor is not None and llava.image_processor.resize_mode == "fixed"
    assert llava.image_processor.height == 384 and llava.image_processor.image_mean == (0.5, 0.5, 0.5)
    assert (e5.kind, e5.embedding_dim) == ("embedding", 1024)


def test_a_registry_file_replaces_the_models() -> None:
    toml = '[[models]]\nid = "qwen"\ntriton_model = "qwen"\ncontract = "llmapi"\n'
    rendered = render(sets=(f"gateway.registry.toml={toml}",))
    assert rendered.get("ConfigMap", "t-chungus-registry")["data"] == {"registry.toml": toml}


def test_triton_pod_follows_nvidia_conventions(default: Rendered) -> None:
    triton = container(default.get("StatefulSet", "t-chungus-triton"), "triton")
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-trtllm-python-py3", triton["image"])
    assert "command" not in triton  # NVIDIA's entrypoint stays in front
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["args"] == ["tritonserver", "--model-repository=/models/model_repository", "--http-port=8000",
                              "--grpc-port=8001", "--metrics-port=8002", "--exit-timeout-secs=600"]
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["startupProbe"]["periodSeconds"] * triton["startupProbe"]["failureThreshold"] == 1800
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


@pytest.mark.parametrize(("sets", "message"), [
    (("gateway.replicaCount=0",), "minimum"),
    (("triton.mpiWorldSize=4", "triton.gpusPerPod=2"), "cannot exceed triton.gpusPerPod"),
    (("triton.enabled=false",), "set gateway.tritonUrls"),
    (("triton.gpuProducts={H100}", "triton.affinity.nodeAffinity.x=y"), "not both"),
    (("postgresql.enabled=false",), "gateway: 2 replicas need a shared key store"),
    (("redis.enabled=false",), "gateway: 2 replicas need a shared Redis"),
    (("gateway.replicaCount=1", "gateway.autoscaling.enabled=true", "gateway.autoscaling.maxReplicas=3",
      "redis.enabled=false"), "gateway: 3 replicas need a shared Redis"),
    (("engines.source=build",), "engines.build.config"),
    (("engines.source=s3",), "engines.s3.url is required"),
    (("gateway.registry.source=engines",), "needs engines.source s3 or oci"),
    (("gateway.registry.models[0].id=x", "gateway.registry.models[0].triton_model=y",
      "gateway.registry.models[0].chatTemplate=t", "gateway.registry.models[0].chat_template=/t.jinja"),
     "set chatTemplate or chat_template, not both"),
])
def test_helm_enforces_the_schema_and_the_chart_rules(sets: tuple[str, ...], message: str) -> None:
    if helm_binary() is None:
        pytest.skip("no helm binary (make install fetches it)")
    assert message in render_error(sets)


def test_one_replica_may_keep_keys_in_sqlite() -> None:
    if helm_binary() is None:
        pytest.skip("no helm binary (make install fetches it)")
    rendered = render(("minimal-values.yaml",))
    env = literal_env(container(rendered.get("Deployment", "t-chungus-gateway"), "gateway"))
    assert env["CHUNGUS_DATABASE_URL"] == "sqlite+aiosqlite:////data/chungus.db" and "CHUNGUS_REDIS_URL" not in env
    assert [s["metadata"]["name"] for s in rendered.of_kind("StatefulSet")] == ["t-chungus-triton"]
    assert not rendered.of_kind("NetworkPolicy") and not rendered.of_kind("PodDisruptionBudget")[1:]
