"""The Helm chart with every optional feature on, in front of external services, and for each
values file of the matrix in helm/chungus/ci: the rendered objects must refer to each other
correctly and pass Kubernetes' own API schemas."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import CHART, NAMESPACE, Rendered, container, helm_binary, literal_env, render

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: no built-in schema
CI_VALUES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


@pytest.fixture(scope="module")
def full() -> Rendered:
    return render(("all-features-values.yaml",))


@pytest.fixture(scope="module")
def external() -> Rendered:
    return render(("external-values.yaml",))


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def matrix() -> dict[str, Rendered]:
    return {"default": render(), **{name: render((name,)) for name in CI_VALUES}}


def gateway_env(rendered: Rendered) -> dict[str, str]:
    return literal_env(container(rendered.get("Deployment", "t-chungus-gateway"), "gateway"))


def test_every_optional_object_is_rendered(full: Rendered) -> None:
    assert set(full.kinds()) == {
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "Pod",
        "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor",
        "StatefulSet"}


def test_hpas_own_the_replica_counts(full: Rendered) -> None:
    hpa = full.get("HorizontalPodAutoscaler", "t-chungus-triton")
    sts = full.get("StatefulSet", hpa["spec"]["scaleTargetRef"]["name"])
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "t-chungus-triton"}
    assert "replicas" not in sts["spec"]  # the HPA owns the count; upgrades must not reset it
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "triton:queue_compute:ratio"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    gateway_hpa = full.get("HorizontalPodAutoscaler", "t-chungus-gateway")
    assert gateway_hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": "t-chungus-gateway"}
    assert (gateway_hpa["spec"]["minReplicas"], gateway_hpa["spec"]["maxReplicas"]) == (3, 6)
    assert "replicas" not in full.get("Deployment", "t-chungus-gateway")["spec"]
    # The DNS entry covers whatever the HPA creates: no fixed list to outgrow.
    assert gateway_env(full)["CHUNGUS_TRITON_URLS"] == f"dns://t-chungus-triton.{NAMESPACE}.svc.cluster.local:8001"


def test_prometheus_rule_records_the_hpa_metric(full: Rendered) -> None:
    import promql_parser  # noqa: PLC0415

    rules = full.get("PrometheusRule", "t-chungus-triton")["spec"]["groups"][0]["rules"]
    assert rules[0]["record"] == full.get("HorizontalPodAutoscaler", "t-chungus-triton")[
        "spec"]["metrics"][0]["pods"]["metric"]["name"]
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert 'pod=~"t-chungus-triton-[0-9]+"' in rule["expr"] and "by (namespace, pod)" in rule["expr"]
    deployment = render(sets=("triton.workload=Deployment", "autoscaling.prometheusRule.enabled=true"))
    expr = deployment.get("PrometheusRule", "t-chungus-triton")["spec"]["groups"][0]["rules"][0]["expr"]
    assert 'pod=~"t-chungus-triton-[a-z0-9]+-[a-z0-9]+"' in expr


def test_database_and_redis_urls_point_at_the_bundled_services(full: Rendered) -> None:
    env = gateway_env(full)
    postgres = full.get("Service", "t-chungus-postgresql")["spec"]["ports"][0]["port"]
    assert env["CHUNGUS_DATABASE_URL"] == f"postgresql+asyncpg://chungus:$(POSTGRES_PASSWORD)@t-chungus-postgresql:{postgres}/chungus"
    names = [e["name"] for e in container(full.get("Deployment", "t-chungus-gateway"), "gateway")["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("CHUNGUS_DATABASE_URL")  # $(VAR) order rule
    assert names.index("REDIS_PASSWORD") < names.index("CHUNGUS_REDIS_URL")
    redis = full.get("Service", "t-chungus-redis")["spec"]["ports"][0]["port"]
    assert env["CHUNGUS_REDIS_URL"] == f"redis://:$(REDIS_PASSWORD)@t-chungus-redis:{redis}/0"
    assert env["CHUNGUS_MAX_BODY_BYTES"] == "31457280" and env["CHUNGUS_KEY_CACHE_TTL_S"] == "2.5"


def _ranks(args: list[str]) -> list[list[str]]:
    """mpirun's MPMD sections: the tritonserver arguments of each rank."""
    ranks, current = [], []
    for arg in args[args.index("-n"):] + [":"]:
        if arg == ":":
            ranks.append(current[2:])  # drop "-n 1"
            current = []
        else:
            current.append(arg)
    return ranks


def test_mpi_ranks_one_per_gpu_and_server_args_on_rank_0_only(full: Rendered) -> None:
    triton = container(full.get("StatefulSet", "t-chungus-triton"), "triton")
    args = triton["args"]
    assert args[:2] == ["mpirun", "--allow-run-as-root"]
    rank0, rank1 = _ranks(args)
    assert rank0[0] == rank1[0] == "tritonserver"
    assert "--log-verbose=1" in rank0 and "--log-verbose=1" not in rank1  # extraArgs: the server only
    assert "--load-model=tensorrt_llm" in rank1 and "--model-control-mode=explicit" in rank1
    assert "--model-control-mode=explicit" not in rank0
    assert "--backend-config=python,shm-region-prefix-name=prefix0_" in rank0
    assert "--backend-config=python,shm-region-prefix-name=prefix1_" in rank1
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 2
    mounts = {m["name"]: m for m in triton["volumeMounts"]}
    assert mounts["model-store"]["subPath"] == "builds/2026-11"
    terms = full.pod_spec("StatefulSet", "t-chungus-triton")["affinity"][
        "nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0] == {"key": "nvidia.com/gpu.product", "operator": "In",
                                               "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H200"]}


def test_eight_gpus_get_eight_ranks_and_cpu_and_memory_to_match(matrix: dict[str, Rendered]) -> None:
    rendered = matrix["gpu8-values.yaml"]
    triton = container(rendered.get("Deployment", "t-chungus-triton"), "triton")
    ranks = _ranks(triton["args"])
    assert len(ranks) == 8
    assert [r.count("--log-verbose=1") for r in ranks] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert [r.count("--log-format=ISO8601") for r in ranks] == [1] * 8  # allRanksArgs
    assert triton["resources"] == {
        "requests": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": 8},
        "limits": {"memory": "512Gi", "nvidia.com/gpu": 8}}
    one_gpu = container(matrix["default"].get("StatefulSet", "t-chungus-triton"), "triton")
    assert one_gpu["resources"]["requests"] == {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": 1}
    custom = render(sets=("triton.gpusPerPod=8", "triton.resources.requests.cpu=12"))
    assert container(custom.get("StatefulSet", "t-chungus-triton"), "triton")["resources"]["requests"]["cpu"] == 12


def _pods_matching(rendered: Rendered, labels: dict[str, str]) -> list[tuple[str, dict, dict]]:
    return [p for p in rendered.pod_specs() if labels.items() <= p[1]["labels"].items()]


@pytest.mark.parametrize("name", ["default", "all-features-values.yaml", "multinode-values.yaml"])
def test_network_policies_select_real_pods_and_ports(matrix: dict[str, Rendered], name: str) -> None:
    rendered = matrix[name]
    assert rendered.of_kind("NetworkPolicy")
    for policy in rendered.of_kind("NetworkPolicy"):
        pods = _pods_matching(rendered, policy["spec"]["podSelector"]["matchLabels"])
        assert pods, policy["metadata"]["name"]
        ports = {p["name"] for c in pods[0][2]["containers"] for p in c.get("ports", [])}
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule.get("ports", [])} <= ports
            for peer in rule.get("from", []):
                if "podSelector" in peer:
                    assert _pods_matching(rendered, peer["podSelector"]["matchLabels"]), peer


def test_only_the_gateway_reaches_triton_by_default(default: Rendered) -> None:
    policy = default.get("NetworkPolicy", "t-chungus-triton")
    inference, metrics = policy["spec"]["ingress"]
    assert inference["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    gateway_pods = {"app.kubernetes.io/name": "chungus", "app.kubernetes.io/instance": "t",
                    "app.kubernetes.io/component": "gateway"}
    assert inference["from"] == [{"podSelector": {"matchLabels": gateway_pods}}]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    for store in ("redis", "postgresql"):
        (rule,) = default.get("NetworkPolicy", f"t-chungus-{store}")["spec"]["ingress"]
        assert rule["from"] == inference["from"]


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
    assert env["CHUNGUS_TRITON_URLS"]["value"] == "triton-a.inference.svc:8001,dns://triton.inference.svc.cluster.local:8001"
    assert env["CHUNGUS_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-admin", "key": "key"}
    assert env["CHUNGUS_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-db", "key": "database-url"}
    assert env["CHUNGUS_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "chungus-redis", "key": "redis-url"}
    volumes = external.pod_spec("Deployment", "t-chungus-gateway")["volumes"]
    assert {"name": "registry", "configMap": {"name": "chungus-registry"}} in volumes
    assert not [v for v in volumes if "persistentVolumeClaim" in v]


@pytest.mark.parametrize("name", ["default", *CI_VALUES])
def test_every_container_is_hardened(matrix: dict[str, Rendered], name: str) -> None:
    for pod, _, spec in matrix[name].pod_specs():
        pod_sc = spec.get("securityContext", {})
        launcher = pod.endswith("/leaderTemplate")  # kubectl exec into its workers: needs a token
        assert spec["automountServiceAccountToken"] is launcher and spec["enableServiceLinks"] is False, pod
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", pod
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, (pod, c["name"])
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert not sc.get("privileged", False)
            assert c["resources"].get("limits", {}).get("memory"), (pod, c["name"])


def _checked_objects(rendered: Rendered) -> list[dict[str, Any]]:
    """Objects with a built-in schema; a LeaderWorkerSet (a CRD) as Pods of its two templates."""
    objects = []
    for obj in rendered.objects:
        if obj["kind"] == "LeaderWorkerSet":
            for _, metadata, spec in [p for p in rendered.pod_specs() if "/" in p[0]]:
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lws", **metadata}, "spec": spec}
                objects.append(pod)
        elif obj["kind"] not in CUSTOM_KINDS:
            objects.append(obj)
    return objects


@pytest.mark.parametrize("name", ["default", *CI_VALUES])
@pytest.mark.parametrize("kube", ["1.27.0", "1.33.0"])
def test_objects_pass_kubernetes_api_schemas(matrix: dict[str, Rendered], name: str, kube: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for obj in _checked_objects(matrix[name]):
        kubernetes_validate.validate(obj, kube, strict=True)  # raises ValidationError
        checked += 1
    assert checked >= 5


def test_kubernetes_schemas_catch_a_typo(default: Rendered) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken: dict[str, Any] = default.get("Deployment", "t-chungus-gateway")
    broken = {**broken, "spec": {**broken["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
