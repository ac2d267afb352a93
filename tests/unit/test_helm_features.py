"""The Helm chart with every optional feature on, and in front of external services: the rendered
objects must refer to each other correctly and pass Kubernetes' own API schemas."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import NAMESPACE, Rendered, container, helm_binary, literal_env, render

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: no built-in schema


@pytest.fixture(scope="module")
def full() -> Rendered:
    return render(("all-features-values.yaml",))


@pytest.fixture(scope="module")
def external() -> Rendered:
    return render(("external-values.yaml",))


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render()


def gateway_env(rendered: Rendered) -> dict[str, str]:
    return literal_env(container(rendered.get("Deployment", "t-chungus-gateway"), "gateway"))


def test_every_optional_object_is_rendered(full: Rendered) -> None:
    assert set(full.kinds()) == {
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "Pod",
        "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor",
        "StatefulSet"}


def test_hpa_scales_triton_and_the_gateway_knows_every_pod(full: Rendered) -> None:
    hpa = full.get("HorizontalPodAutoscaler", "t-chungus-triton")
    sts = full.get("StatefulSet", hpa["spec"]["scaleTargetRef"]["name"])
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert "replicas" not in sts["spec"]  # the HPA owns the count; upgrades must not reset it
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "triton:queue_compute:ratio"
    urls = gateway_env(full)["CHUNGUS_TRITON_URLS"].split(",")
    assert len(urls) == hpa["spec"]["maxReplicas"] == 6
    assert urls[-1] == f"t-chungus-triton-5.t-chungus-triton.{NAMESPACE}.svc:8001"


def test_prometheus_rule_records_the_hpa_metric(full: Rendered) -> None:
    import promql_parser  # noqa: PLC0415

    rules = full.get("PrometheusRule", "t-chungus-triton")["spec"]["groups"][0]["rules"]
    assert rules[0]["record"] == full.get("HorizontalPodAutoscaler", "t-chungus-triton")[
        "spec"]["metrics"][0]["pods"]["metric"]["name"]
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert 'pod=~"t-chungus-triton-[0-9]+"' in rule["expr"] and "by (namespace, pod)" in rule["expr"]


def test_database_and_redis_urls_point_at_the_bundled_services(full: Rendered) -> None:
    env = gateway_env(full)
    postgres = full.get("Service", "t-chungus-postgresql")["spec"]["ports"][0]["port"]
    assert env["CHUNGUS_DATABASE_URL"] == f"postgresql+asyncpg://chungus:$(POSTGRES_PASSWORD)@t-chungus-postgresql:{postgres}/chungus"
    names = [e["name"] for e in container(full.get("Deployment", "t-chungus-gateway"), "gateway")["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("CHUNGUS_DATABASE_URL")  # $(VAR) order rule
    redis = full.get("Service", "t-chungus-redis")["spec"]["ports"][0]["port"]
    assert env["CHUNGUS_REDIS_URL"] == f"redis://t-chungus-redis:{redis}/0"
    assert env["CHUNGUS_MAX_BODY_BYTES"] == "20971520" and env["CHUNGUS_KEY_CACHE_TTL_S"] == "2.5"


def test_mpi_ranks_one_per_gpu(full: Rendered) -> None:
    triton = container(full.get("StatefulSet", "t-chungus-triton"), "triton")
    args = triton["args"]
    assert args[:2] == ["mpirun", "--allow-run-as-root"] and args.count("tritonserver") == 2
    rank1 = args[args.index(":") + 1:]
    assert "--load-model=tensorrt_llm" in rank1 and "--model-control-mode=explicit" in rank1
    assert "--backend-config=python,shm-region-prefix-name=prefix1_" in rank1
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 2
    mounts = {m["name"]: m for m in triton["volumeMounts"]}
    assert mounts["model-store"]["subPath"] == "builds/2026-11"
    gateway = container(full.get("Deployment", "t-chungus-gateway"), "gateway")
    assert {m["name"]: m for m in gateway["volumeMounts"]}["model-store"]["subPath"] == "builds/2026-11/models"
    terms = full.get("StatefulSet", "t-chungus-triton")["spec"]["template"]["spec"]["affinity"][
        "nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.product"


def _pods_matching(rendered: Rendered, labels: dict[str, str]) -> list[tuple[str, dict, dict]]:
    return [p for p in rendered.pod_specs() if labels.items() <= p[1]["labels"].items()]


def test_network_policies_select_real_pods_and_ports(full: Rendered) -> None:
    for policy in full.of_kind("NetworkPolicy"):
        pods = _pods_matching(full, policy["spec"]["podSelector"]["matchLabels"])
        assert pods, policy["metadata"]["name"]
        ports = {p["name"] for c in pods[0][2]["containers"] for p in c.get("ports", [])}
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= ports
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    assert _pods_matching(full, peer["podSelector"]["matchLabels"]), peer


def test_ingress_and_monitor_point_at_real_service_ports(full: Rendered) -> None:
    for rule in full.get("Ingress", "t-chungus")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = full.get("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    monitor = full.get("ServiceMonitor", "t-chungus-triton")
    services = [s for s in full.of_kind("Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in services] == ["t-chungus-triton"]
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in services[0]["spec"]["ports"]}


def test_external_services_and_existing_secrets(external: Rendered) -> None:
    assert not external.of_kind("StatefulSet") and not external.of_kind("Secret")
    assert not external.of_kind("ConfigMap")
    gateway = container(external.get("Deployment", "t-chungus-gateway"), "gateway")
    env = {e["name"]: e for e in gateway["env"]}
    assert env["CHUNGUS_TRITON_URLS"]["value"] == "triton-a.inference.svc:8001,triton-b.inference.svc:8001"
    assert env["CHUNGUS_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-admin", "key": "key"}
    assert env["CHUNGUS_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-db", "key": "database-url"}
    assert env["CHUNGUS_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-redis", "key": "redis-url"}
    volumes = external.get("Deployment", "t-chungus-gateway")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "registry", "configMap": {"name": "chungus-registry"}} in volumes
    assert "model-store" not in {v["name"] for v in volumes}


@pytest.mark.parametrize("fixture", ["default", "full", "external"])
def test_every_container_is_hardened(fixture: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(fixture)
    for name, _, spec in rendered.pod_specs():
        pod_sc = spec.get("securityContext", {})
        assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert not sc.get("privileged", False)
            assert c["resources"].get("limits", {}).get("memory"), (name, c["name"])


@pytest.mark.parametrize("fixture", ["default", "full", "external"])
@pytest.mark.parametrize("kube", ["1.27.0", "1.33.0"])
def test_objects_pass_kubernetes_api_schemas(fixture: str, kube: str, request: pytest.FixtureRequest) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    rendered: Rendered = request.getfixturevalue(fixture)
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, kube, strict=True)  # raises ValidationError
        checked += 1
    assert checked >= 5


def test_kubernetes_schemas_catch_a_typo(default: Rendered) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken: dict[str, Any] = default.get("Deployment", "t-chungus-gateway")
    broken = {**broken, "spec": {**broken["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
