"""The Helm chart, checked without a cluster: Chart.yaml, values against values.schema.json, a
comment on every value, standard labels kept out of selectors, optional features off by default.

(`helm lint` / `helm template` need the helm binary, which no package registry here ships; run
them where helm is installed: `helm lint helm/chungus --set gateway.adminKey=sk-chungus-...`.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "chungus"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["kubeVersion"] and chart["name"] == "chungus"


def test_defaults_match_the_schema(values: dict, schema: dict) -> None:
    jsonschema.validate(values, schema)


@pytest.mark.parametrize(("path", "bad"), [
    (("gateway", "replicas"), 0), (("gateway", "adminKey"), "not-a-key"),
    (("triton", "ports", "grpc"), 70000), (("gateway", "unknownKey"), 1),
    (("triton", "image", "pullPolicy"), "Sometimes"),
])
def test_schema_rejects_bad_values(values: dict, schema: dict, path: tuple, bad: object) -> None:
    import copy

    broken = copy.deepcopy(values)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_every_value_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w]*):\s*(\S.*)?$", line)
        if not match or match.group(3) is None:  # a section header, or not a key at all
            continue
        indent = len(match.group(1))
        parent = next((p for p in reversed(lines[:i]) if p.strip() and
                       len(p) - len(p.lstrip()) < indent), "")
        if parent.lstrip().startswith("- "):  # inside a list item: the list has the comment
            continue
        assert lines[i - 1].strip().startswith("#"), f"value without a comment: {line.strip()}"


def test_optional_features_are_off_by_default(values: dict) -> None:
    for feature in ("redis", "postgresql", "autoscaling", "serviceMonitor", "networkPolicy", "ingress"):
        assert values[feature]["enabled"] is False


def test_selectors_never_use_the_chart_label() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    selector = helpers.split('define "chungus.selectorLabels"')[1].split("end")[0]
    assert "helm.sh/chart" not in selector
    for template in (CHART / "templates").glob("*.yaml"):
        text = template.read_text()
        for block in re.findall(r"(?:matchLabels|selector):[^\n]*\n?[^\n]*", text):
            assert "chungus.labels" not in block, template.name


def test_templates_harden_containers_and_request_gpus() -> None:
    triton = (CHART / "templates" / "triton.yaml").read_text()
    gateway = (CHART / "templates" / "gateway.yaml").read_text()
    assert "nvidia.com/gpu" in triton and "launch_triton_server.py" in triton
    assert "chungus.containerSecurity" in gateway and "runAsNonRoot: true" in gateway
    assert "/health/ready" in gateway and "/health/live" in gateway
    assert (CHART / "templates" / "tests" / "test-connection.yaml").exists()
