"""The chart's gateway ServiceMonitor and Grafana dashboard: off by default, aimed at the gateway
Service's http port, refused when they could not work, and a dashboard whose every query parses
and which charts every chungus_* family the gateway exports and Triton's own families."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway.metrics import Metrics
from tests.chart import Rendered, helm_binary, render, render_error

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="no helm binary (make install fetches it)")
ON = ("metrics.serviceMonitor.enabled=true", "metrics.dashboard.enabled=true")
# Triton's own families (server docs/user_guide/metrics.md; TensorRT-LLM backend's custom metrics)
TRITON_FAMILIES = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us", "nv_inference_pending_request_count",
    "nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes",
    "nv_trt_llm_request_metrics", "nv_trt_llm_kv_cache_block_metrics",
}


@pytest.fixture(scope="module")
def on() -> Rendered:
    return render(sets=(*ON, "metrics.serviceMonitor.labels.release=prom",
                        "metrics.dashboard.annotations.grafana_folder=LLM"))


@pytest.fixture(scope="module")
def dashboard(on: Rendered) -> dict[str, Any]:
    configmap = on.get("ConfigMap", "t-chungus-dashboard")
    return dict(json.loads(configmap["data"]["chungus.json"]))


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_off_by_default() -> None:
    default = render()
    assert [m["metadata"]["name"] for m in default.of_kind("ServiceMonitor")] == []
    assert "t-chungus-dashboard" not in {c["metadata"]["name"] for c in default.of_kind("ConfigMap")}


def test_service_monitor_scrapes_the_gateway_service(on: Rendered) -> None:
    monitor = on.get("ServiceMonitor", "t-chungus-gateway")
    service = on.get("Service", "t-chungus-gateway")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert selector == service["spec"]["selector"]  # the gateway's pods' labels, not Triton's
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert "http" in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_service_monitor_refused_when_it_could_not_scrape() -> None:
    off = render_error(sets=(ON[0], "gateway.config.metrics_enabled=false"))
    assert "gateway.config.metrics_enabled is false" in off
    own_port = render_error(sets=(ON[0], "gateway.config.metrics_port=9100"))
    assert "leave gateway.config.metrics_port unset" in own_port


def test_dashboard_configmap_is_picked_up_by_grafanas_sidecar(on: Rendered) -> None:
    configmap = on.get("ConfigMap", "t-chungus-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "LLM"}


def test_dashboard_queries_parse(dashboard: dict[str, Any]) -> None:
    import promql_parser  # noqa: PLC0415

    exprs = _exprs(dashboard)
    assert len(exprs) >= 30
    for expr in exprs:
        promql_parser.parse(expr.replace("$__rate_interval", "5m"))  # raises on a syntax error
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "triton_job"}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            box = panel["gridPos"]
            assert box["x"] + box["w"] <= 24
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_charts_every_gateway_family_and_tritons(dashboard: dict[str, Any]) -> None:
    used = set(re.findall(r"\b((?:chungus|nv)_[a-z_]+?)(?:_bucket|_total)?\{", " ".join(_exprs(dashboard))))
    exported = {m.name for m in Metrics().registry.collect()}
    assert {u for u in used if u.startswith("chungus_")} == exported
    assert {u for u in used if u.startswith("nv_")} == TRITON_FAMILIES
