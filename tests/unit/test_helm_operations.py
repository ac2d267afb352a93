"""The Helm chart as operators run it: GitOps renders, Secrets that roll the gateway, pod hooks on
every workload, engines into the cluster, probes and disruption budgets, rollouts and shutdown,
long release names and multi-node Triton."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from build_engines.__main__ import make_parser as build_engines_parser
from build_engines.trtllm.config import load as load_build_file
from tests.chart import Rendered, container, helm_binary, literal_env, render, render_text

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
GATEWAY = ("Deployment", "t-chungus-gateway")
TRITON = ("StatefulSet", "t-chungus-triton")


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render()


def annotations(rendered: Rendered, kind: str = "Deployment", name: str = "t-chungus-gateway") -> dict[str, str]:
    return rendered.get(kind, name)["spec"]["template"]["metadata"].get("annotations", {})


# 1. Secrets under GitOps


def test_gitops_renders_are_identical() -> None:
    assert render_text(("gitops-values.yaml",)) == render_text(("gitops-values.yaml",))
    rendered = render(("gitops-values.yaml",))
    assert not rendered.of_kind("Secret")  # every Secret made outside the chart


def test_generated_secrets_survive_uninstall_and_are_consistent_within_a_render(default: Rendered) -> None:
    for name in ("t-chungus-gateway", "t-chungus-postgresql", "t-chungus-redis"):
        assert default.get("Secret", name)["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    keys = {base64.b64decode(default.get("Secret", n)["data"][k]).decode()
            for n, k in (("t-chungus-gateway", "admin-key"), ("t-chungus-postgresql", "password"),
                         ("t-chungus-redis", "password"))}
    assert len(keys) == 3 and all(re.fullmatch(r"(sk-chungus-)?[A-Za-z0-9]{32,40}", k) for k in keys)


def test_the_checksum_hashes_the_values_the_secrets_hold(default: Rendered) -> None:
    """Generated values are drawn once per render: the Secrets and the checksum agree."""
    def secret(name: str, key: str) -> str:
        return base64.b64decode(default.get("Secret", name)["data"][key]).decode()

    stores = [json.dumps(v, sort_keys=True, separators=(",", ":")) for v in (
        {"existingSecret": "", "existingSecretKey": "database-url", "url": ""},
        {"existingSecret": "", "existingSecretKey": "redis-url", "url": ""})]
    parts = ["", secret("t-chungus-gateway", "admin-key"), secret("t-chungus-postgresql", "password"),
             secret("t-chungus-redis", "password"), *stores, "", ""]
    assert annotations(default)["checksum/secrets"] == hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_gateway_rolls_when_a_secret_changes() -> None:
    def checksum(*sets: str) -> str:
        return annotations(render(sets=("postgresql.auth.password=pw1", "redis.auth.password=rp1", *sets)))[
            "checksum/secrets"]

    base = checksum("gateway.auth.adminKey=sk-chungus-aaaaaaaaaaaaaaaaaaaa")
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert base == checksum("gateway.auth.adminKey=sk-chungus-aaaaaaaaaaaaaaaaaaaa")
    changed = {checksum("gateway.auth.adminKey=sk-chungus-bbbbbbbbbbbbbbbbbbbb"),
               checksum("gateway.auth.adminKey=sk-chungus-aaaaaaaaaaaaaaaaaaaa", "gateway.secretsRevision=2"),
               checksum("gateway.auth.adminKey=sk-chungus-aaaaaaaaaaaaaaaaaaaa", "postgresql.auth.password=pw2"),
               checksum("gateway.auth.adminKey=sk-chungus-aaaaaaaaaaaaaaaaaaaa", "redis.auth.password=rp2")}
    assert base not in changed and len(changed) == 4


# 2. Ingress body size and timeouts


def test_ingress_limits_follow_the_gateway() -> None:
    rendered = render(sets=("ingress.enabled=true",))
    assert rendered.get("Ingress", "t-chungus")["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "21m",  # 20 MiB bodies reach the gateway's own 413
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "600",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off"}
    full = render(("all-features-values.yaml",)).get("Ingress", "t-chungus")["metadata"]["annotations"]
    assert full["nginx.ingress.kubernetes.io/proxy-body-size"] == "31m"  # max_body_bytes: 30 MiB
    assert full["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "900"  # triton_timeout_s: 900
    assert full["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "1200"  # the values' own annotation wins


@pytest.mark.parametrize(("controller", "expected"), [
    ("nginx-inc", {"nginx.org/client-max-body-size": "21m", "nginx.org/proxy-read-timeout": "600s",
                   "nginx.org/proxy-send-timeout": "600s", "nginx.org/proxy-buffering": "false"}),
    ("haproxy", {"haproxy.org/timeout-server": "600s"}),
    ("traefik", None), ("none", None)])
def test_ingress_annotations_per_controller(controller: str, expected: dict[str, str] | None) -> None:
    ingress = render(sets=("ingress.enabled=true", f"ingress.controller={controller}")).get("Ingress", "t-chungus")
    assert ingress["metadata"].get("annotations") == expected


# 3. Pod hooks on every workload

HOOKED = {"gateway": GATEWAY, "triton": TRITON, "redis": ("StatefulSet", "t-chungus-redis"),
          "postgresql": ("StatefulSet", "t-chungus-postgresql")}


# One tuple per parameter: conftest.py marks a bare "redis"/"postgresql" parameter as needing that server.
@pytest.mark.parametrize("target", sorted(HOOKED.items()), ids=sorted(HOOKED))
def test_every_workload_takes_the_pod_hooks(target: tuple[str, tuple[str, str]]) -> None:
    c, workload_key = target
    rendered = render(sets=(
        f"{c}.runtimeClassName=nvidia", f"{c}.priorityClassName=high", f"{c}.podAnnotations.a=b",
        f"{c}.podLabels.team=ml", f"{c}.nodeSelector.pool=p1",
        f"{c}.tolerations[0].key=k", f"{c}.tolerations[0].operator=Exists",
        f"{c}.topologySpreadConstraints[0].maxSkew=1", f"{c}.topologySpreadConstraints[0].topologyKey=zone",
        f"{c}.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        f"{c}.initContainers[0].name=init-x", f"{c}.initContainers[0].image=busybox",
        f"{c}.sidecars[0].name=side-x", f"{c}.sidecars[0].image=busybox",
        f"{c}.extraVolumes[0].name=extra", f"{c}.extraVolumes[0].emptyDir.medium=Memory",
        f"{c}.extraVolumeMounts[0].name=extra", f"{c}.extraVolumeMounts[0].mountPath=/extra"))
    workload = rendered.get(*workload_key)
    meta, spec = workload["spec"]["template"]["metadata"], workload["spec"]["template"]["spec"]
    assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("nvidia", "high")
    assert meta["annotations"]["a"] == "b" and meta["labels"]["team"] == "ml"
    assert spec["nodeSelector"] == {"pool": "p1"}
    assert {"key": "k", "operator": "Exists"} in spec["tolerations"]
    assert spec["topologySpreadConstraints"] == [{"maxSkew": 1, "topologyKey": "zone",
                                                  "whenUnsatisfiable": "DoNotSchedule"}]
    assert spec["initContainers"][-1] == {"name": "init-x", "image": "busybox"}
    assert spec["containers"][-1] == {"name": "side-x", "image": "busybox"}
    assert {"name": "extra", "emptyDir": {"medium": "Memory"}} in spec["volumes"]
    assert {"name": "extra", "mountPath": "/extra"} in spec["containers"][0]["volumeMounts"]
    # The selector is untouched by podLabels.
    assert "team" not in workload["spec"]["selector"]["matchLabels"]


def test_pod_annotations_never_replace_the_checksums() -> None:
    rendered = render(sets=("gateway.podAnnotations.checksum/secrets=mine",))
    assert annotations(rendered)["checksum/secrets"] != "mine"


# 4. Registry without the model volume; engines into the cluster


def test_registry_sources() -> None:
    store = render(sets=("gateway.registry.source=modelStore", "modelStore.subPath=/out/a/"))
    spec = store.pod_spec(*GATEWAY)
    gateway = container(spec, "gateway")
    assert literal_env(gateway)["CHUNGUS_REGISTRY_PATH"] == "/etc/chungus/store/registry.toml"
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "registry-store")
    assert (mount["mountPath"], mount["subPath"], mount["readOnly"]) == ("/etc/chungus/store", "out/a", True)
    volume = next(v for v in spec["volumes"] if v["name"] == "registry-store")
    assert volume["persistentVolumeClaim"] == {"claimName": "chungus-models", "readOnly": True}
    assert not store.of_kind("ConfigMap")


def test_build_job_builds_onto_the_claim_and_triton_waits_for_it(tmp_path: Path) -> None:
    rendered = render(("engines-build-values.yaml",))
    (job,) = rendered.of_kind("Job")
    name = job["metadata"]["name"]
    assert re.fullmatch(r"t-chungus-build-[0-9a-f]{10}", name)
    build_hash = name.rsplit("-", 1)[1]
    config = rendered.get("ConfigMap", name)["data"]["models.toml"]
    assert 'hf_model = "/models/hf/Meta-Llama-3.1-8B-Instruct"' in config
    spec = job["spec"]["template"]["spec"]
    build = container(spec, "build")
    triton = container(rendered.get(*TRITON), "triton")
    assert build["image"] == triton["image"]  # an engine is tied to its TensorRT-LLM version
    assert build["resources"]["limits"]["nvidia.com/gpu"] == 1
    script = build["args"][0]
    assert "python3 -m build_engines trtllm --config /config/models.toml --out /models/out/llama" in script
    assert script.rstrip().endswith(f"echo {build_hash} > /models/out/llama/.chungus-build")
    assert {"name": "PIP_INDEX_URL", "value": "https://pypi.mirror.example.com/simple"} in build["env"]
    source = container(spec, "chungus-source")
    assert source["image"] == container(rendered.get(*GATEWAY), "gateway")["image"]
    assert source["command"][-1] == "cp -r /opt/chungus/src /chungus/src"
    assert job["spec"]["backoffLimit"] == 0 and spec["restartPolicy"] == "Never"
    # The rendered build file and command are what the real build_engines accepts.
    (tmp_path / "models.toml").write_text(config)
    assert [m.id for m in load_build_file(tmp_path / "models.toml").models] == ["llama-3.1-8b-instruct"]
    command = script.split("python3 -m build_engines ", 1)[1].splitlines()[0].split()
    args = build_engines_parser().parse_args(command)
    assert (args.target, str(args.config), str(args.out)) == ("trtllm", "/config/models.toml", "/models/out/llama")
    assert {"name": "config", "mountPath": "/config", "readOnly": True} in build["volumeMounts"]
    wait = container(rendered.get(*TRITON), "wait-for-build")
    assert f'= "{build_hash}" ]' in wait["args"][0] and "/models/.chungus-build" in wait["args"][0]
    assert {"name": "model-store", "mountPath": "/models", "subPath": "out/llama", "readOnly": True} in (
        wait["volumeMounts"])
    other = render(("engines-build-values.yaml",), sets=("engines.build.gpus=2",))
    assert other.of_kind("Job")[0]["metadata"]["name"] == name  # GPUs are not part of the input
    changed = render(("engines-build-values.yaml",), sets=("triton.image.tag=26.08-trtllm-python-py3",))
    assert changed.of_kind("Job")[0]["metadata"]["name"] != name  # a new image is a new build


def test_dockerfile_ships_the_source_the_build_job_copies() -> None:
    from tests.chart import ROOT  # noqa: PLC0415

    assert "COPY --from=build /src /opt/chungus/src" in (ROOT / "Dockerfile").read_text()


def test_s3_engines_are_copied_into_each_pod() -> None:
    rendered = render(("multinode-values.yaml",))
    lws = rendered.get("LeaderWorkerSet", "t-chungus-triton")
    for role in ("leaderTemplate", "workerTemplate"):
        spec = lws["spec"]["leaderWorkerTemplate"][role]["spec"]
        fetch = container(spec, "fetch-engines")
        assert fetch["command"] == ["aws"]
        assert fetch["args"] == ["s3", "sync", "s3://models/llama-3.1-405b-tp16/", "/dest", "--only-show-errors",
                                 "--no-progress", "--endpoint-url", "https://minio.storage.svc:9000"]
        assert fetch["envFrom"] == [{"secretRef": {"name": "chungus-s3"}}]
        assert {"name": "model-store", "mountPath": "/dest"} in fetch["volumeMounts"]
        volume = next(v for v in spec["volumes"] if v["name"] == "model-store")
        assert volume == {"name": "model-store", "emptyDir": {"sizeLimit": "200Gi"}}
    gateway_spec = rendered.pod_spec(*GATEWAY)
    fetch = container(gateway_spec, "fetch-registry")
    assert fetch["args"][-2:] == ["--exclude", "model_repository/*"]  # registry.toml and models/ only
    gateway_env = literal_env(container(gateway_spec, "gateway"))
    assert gateway_env["CHUNGUS_REGISTRY_PATH"] == "/etc/chungus/store/registry.toml"


def test_oci_engines_are_pulled_with_oras() -> None:
    rendered = render(("engines-oci-values.yaml",))
    fetch = container(rendered.get(*TRITON), "fetch-engines")
    assert fetch["command"] == ["oras"]
    assert fetch["args"] == ["pull", "registry.example.com/models/llama-3.1-8b-h100:26.07", "--output", "/dest",
                             "--registry-config", "/oci-auth/.dockerconfigjson"]
    gateway_fetch = container(rendered.get(*GATEWAY), "fetch-registry")
    assert gateway_fetch["args"][1] == "registry.example.com/models/llama-3.1-8b-h100:26.07-registry"
    volumes = {v["name"]: v for v in rendered.pod_spec(*GATEWAY)["volumes"]}
    assert volumes["oci-auth"] == {"name": "oci-auth", "secret": {"secretName": "registry-pull"}}


# 5. Readiness and disruption budgets


def test_gateway_readiness_is_its_own_and_drains_evict_unready_pods(default: Rendered) -> None:
    gateway = container(default.get(*GATEWAY), "gateway")
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert "startupProbe" not in gateway  # nothing to wait for: helm --wait sees it ready at once
    for name in ("t-chungus-gateway", "t-chungus-triton"):
        pdb = default.get("PodDisruptionBudget", name)
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" and pdb["spec"]["maxUnavailable"] == 1


# 7. Triton rollouts


def test_triton_rollout_strategies(default: Rendered) -> None:
    sts = default.get(*TRITON)["spec"]
    assert sts["updateStrategy"] == {"type": "RollingUpdate"}
    assert sts["podManagementPolicy"] == "Parallel"  # HPA scale-outs start every new pod at once
    surge = render(sets=("triton.workload=Deployment",))
    deployment = surge.get("Deployment", "t-chungus-triton")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert deployment["spec"]["replicas"] == 1 and not [s for s in surge.of_kind("StatefulSet")
                                                         if s["metadata"]["name"] == "t-chungus-triton"]
    partitioned = render(sets=("triton.updateStrategy.type=RollingUpdate",
                               "triton.updateStrategy.rollingUpdate.partition=1"))
    assert partitioned.get(*TRITON)["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": 1}
    hpa = render(sets=("triton.workload=Deployment", "autoscaling.enabled=true"))
    assert hpa.get("HorizontalPodAutoscaler", "t-chungus-triton")["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert "replicas" not in hpa.get("Deployment", "t-chungus-triton")["spec"]


# 8. Shutdown


def test_grace_periods_outlast_the_longest_stream(default: Rendered) -> None:
    timeout = int(float(literal_env(container(default.get(*GATEWAY), "gateway"))["CHUNGUS_TRITON_TIMEOUT_S"]))
    assert timeout == 600
    spec = default.pod_spec(*GATEWAY)
    assert container(spec, "gateway")["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert spec["terminationGracePeriodSeconds"] == 10 + timeout + 20
    triton_spec = default.pod_spec(*TRITON)
    triton = container(triton_spec, "triton")
    assert f"--exit-timeout-secs={timeout}" in triton["args"]  # Triton waits for in-flight requests
    assert triton["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert triton_spec["terminationGracePeriodSeconds"] == 10 + timeout + 20
    longer = render(sets=("gateway.config.triton_timeout_s=1800", "triton.preStopSleepSeconds=0"))
    assert longer.pod_spec(*GATEWAY)["terminationGracePeriodSeconds"] == 10 + 1800 + 20
    assert longer.pod_spec(*TRITON)["terminationGracePeriodSeconds"] == 1800 + 20
    assert "lifecycle" not in container(longer.get(*TRITON), "triton")
    pinned = render(sets=("gateway.terminationGracePeriodSeconds=45", "triton.exitTimeoutSeconds=30"))
    assert pinned.pod_spec(*GATEWAY)["terminationGracePeriodSeconds"] == 45
    assert "--exit-timeout-secs=30" in container(pinned.get(*TRITON), "triton")["args"]


# 9. Long release names

LONG = "a-release-name-of-fifty-three-characters-exactly-wxyz"


@pytest.mark.parametrize("values", [(), ("all-features-values.yaml",), ("multinode-values.yaml",),
                                    ("engines-build-values.yaml",)])
def test_long_release_names_fit_every_name_and_label(values: tuple[str, ...]) -> None:
    assert len(LONG) == 53  # Helm's own limit for release names
    rendered = render(values, release=LONG)
    for obj in rendered.objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        if obj["kind"] == "StatefulSet":
            assert len(f"{name}-{'x' * 10}") <= 63, name  # controller-revision-hash=<name>-<hash>
        if obj["kind"] == "LeaderWorkerSet":
            # Worker StatefulSets <name>-<group> and their revision labels <name>-<group>-<hash>.
            assert len(f"{name}-999-{'x' * 10}") <= 63, name
        assert all(len(str(v)) <= 63 for v in obj["metadata"].get("labels", {}).values()), name
    for pod, meta, _ in rendered.pod_specs():
        assert all(len(str(v)) <= 63 for v in meta["labels"].values()), pod
    if not values:
        sts = rendered.get("StatefulSet", f"{LONG[:45]}-triton")  # 45 + "-triton" = 52
        assert sts["spec"]["serviceName"] == sts["metadata"]["name"]


# 10. Redis


def test_bundled_redis_has_a_password_and_protected_mode(default: Rendered) -> None:
    redis = container(default.get("StatefulSet", "t-chungus-redis"), "redis")
    args = redis["args"]
    assert args[args.index("--protected-mode") + 1] == "yes"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    env = {e["name"]: e for e in redis["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "t-chungus-redis", "key": "password"}
    assert env["REDISCLI_AUTH"]["value"] == "$(REDIS_PASSWORD)"  # the probe authenticates
    names = [e["name"] for e in redis["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("REDISCLI_AUTH")


# Multi-node tensor parallelism


@pytest.fixture(scope="module")
def multinode() -> Rendered:
    return render(("multinode-values.yaml",))


def test_multinode_renders_a_leader_worker_set(multinode: Rendered) -> None:
    lws = multinode.get("LeaderWorkerSet", "t-chungus-triton")
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and template["restartPolicy"] == "RecreateGroupOnPodRestart"
    # Not LeaderReady: the leader is ready only once mpirun runs on its workers.
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"
    assert lws["spec"]["replicas"] == 1 and not multinode.of_kind("StatefulSet")[2:]
    leader, worker = template["leaderTemplate"], template["workerTemplate"]
    assert leader["metadata"]["labels"]["app.kubernetes.io/component"] == "triton"  # the Service's pods
    assert worker["metadata"]["labels"]["app.kubernetes.io/component"] == "triton-worker"
    service = multinode.get("Service", "t-chungus-triton")
    assert service["spec"]["selector"].items() <= leader["metadata"]["labels"].items()
    assert not service["spec"]["selector"].items() <= worker["metadata"]["labels"].items()
    for spec in (leader["spec"], worker["spec"]):
        triton = container(spec, "triton")
        assert triton["resources"]["limits"]["nvidia.com/gpu"] == 8 and "command" not in triton
        assert spec["runtimeClassName"] == "nvidia"
    assert "ports" not in container(worker["spec"], "triton")
    # One budget over leaders and workers: a drain takes one pod of one group at a time.
    selector = multinode.get("PodDisruptionBudget", "t-chungus-triton")["spec"]["selector"]
    assert selector["matchExpressions"] == [{"key": "app.kubernetes.io/component", "operator": "In",
                                             "values": ["triton", "triton-worker"]}]
    for pod in (leader, worker):
        assert selector["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_multinode_leader_runs_every_rank_over_the_group(multinode: Rendered) -> None:
    leader = multinode.get("LeaderWorkerSet", "t-chungus-triton")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    spec = leader["spec"]
    triton = container(spec, "triton")
    shell, script, zero, *mpmd = triton["args"][1:]
    assert triton["args"][0] == "sh" and shell == "-c" and zero == "mpirun"
    assert 'hosts="$POD_NAME:8"' in script and 'hosts="$hosts,$POD_NAME-$i:8"' in script
    assert 'while [ "$i" -lt 2 ]' in script and 'exec mpirun --allow-run-as-root --host "$hosts" "$@"' in script
    ranks = _ranks(["mpirun", *mpmd])
    assert len(ranks) == 16  # 2 nodes x 8 GPUs
    assert "--model-control-mode=explicit" not in ranks[0] and all("--load-model=tensorrt_llm" in r for r in ranks[1:])
    env = {e["name"]: e for e in triton["env"]}
    assert env["OMPI_MCA_plm_rsh_agent"]["value"] == "/launcher/kubexec"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert spec["serviceAccountName"] == "t-chungus-triton-launcher" and spec["automountServiceAccountToken"] is True
    role = multinode.get("Role", "t-chungus-triton-launcher")
    assert {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]} in role["rules"]
    binding = multinode.get("RoleBinding", "t-chungus-triton-launcher")
    assert binding["subjects"][0]["name"] == spec["serviceAccountName"]
    kubexec = multinode.get("ConfigMap", "t-chungus-triton-launcher")["data"]["kubexec"]
    assert 'exec /launcher/kubectl exec "$pod" -c triton -- /bin/sh -c "$*"' in kubexec
    hpa = render(("multinode-values.yaml",), sets=("autoscaling.enabled=true",))
    assert hpa.get("HorizontalPodAutoscaler", "t-chungus-triton")["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "t-chungus-triton"}
    assert "replicas" not in hpa.get("LeaderWorkerSet", "t-chungus-triton")["spec"]


def _ranks(args: list[str]) -> list[list[str]]:
    ranks, current = [], []
    for arg in args[args.index("-n"):] + [":"]:
        if arg == ":":
            ranks.append(current[2:])
            current = []
        else:
            current.append(arg)
    return ranks


def test_values_schema_documents_every_new_hook() -> None:
    from tests.chart import CHART  # noqa: PLC0415

    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    for component in HOOKED:
        props = schema["properties"][component]["properties"]
        assert {"runtimeClassName", "priorityClassName", "initContainers", "sidecars", "extraVolumes",
                "extraVolumeMounts", "podAnnotations", "podLabels", "topologySpreadConstraints"} <= set(props)
    assert schema["properties"]["triton"]["properties"]["updateStrategy"]["type"] == "object"
