"""deploy/helm/relay: values.yaml satisfies values.schema.json, and the chart's default
rendering is deploy/kubernetes/ object for object (rendered by tests/deploy/helm_render.py, the
subset of Go templates the chart uses; the chart's README has the ``helm template`` check)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.helm_render import Chart, Unsupported, parse
from tests.deploy.test_kubernetes import by_kind, load_manifests, validate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/relay"


@pytest.fixture(scope="module")
def chart() -> Chart:
    return Chart(CHART)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_values_satisfy_the_schema(chart: Chart, validator: jsonschema.Draft7Validator) -> None:
    assert [e.message for e in validator.iter_errors(chart.default_values())] == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["replicaCount"], "two", "'two' is not of type 'integer'"),
        (["image", "pullPolicy"], "Sometimes", "'Sometimes' is not one of"),
        (["autoscaling", "maxReplica"], 3, "'maxReplica' was unexpected"),
        (["database", "url"], "mysql://x", "does not match"),
        (["resources", "limits", "memory"], "lots", "does not match"),
    ],
)
def test_the_schema_rejects_bad_values(
    chart: Chart,
    validator: jsonschema.Draft7Validator,
    path: list[str],
    value: Any,
    expected: str,
) -> None:
    values = chart.default_values()
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    messages = [e.message for e in validator.iter_errors(values)]
    assert any(expected in m for m in messages), messages


def test_default_rendering_is_deploy_kubernetes(chart: Chart) -> None:
    rendered = by_kind(chart.manifests())
    assert rendered == by_kind(load_manifests())


def test_rendering_follows_the_values(chart: Chart) -> None:
    values = copy.deepcopy(chart.default_values())
    values["autoscaling"]["enabled"] = False
    values["podDisruptionBudget"]["enabled"] = False
    values["replicaCount"] = 3
    values["image"] = {
        "repository": "registry.example/relay",
        "tag": "1.2.3",
        "pullPolicy": "Always",
    }
    values["database"]["url"] = "postgresql://relay@db:5432/relay"
    values["secret"]["keys"] = ["OPENAI_API_KEY"]
    values["env"] = [{"name": "RELAY_LOG_LEVEL", "value": "debug"}]
    values["resources"] = {"requests": {"cpu": "1", "memory": "512Mi"}}
    chart_with = Chart(CHART, release="gateway")
    objects = by_kind(chart_with.manifests(values))
    assert set(objects) == {"ConfigMap", "Deployment", "Service"}
    deployment = objects["Deployment"]
    assert deployment["metadata"]["name"] == "gateway"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/relay:1.2.3"
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "value": "postgresql://relay@db:5432/relay",
    }
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "relay-secrets"
    assert env["RELAY_LOG_LEVEL"]["value"] == "debug"
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "512Mi"}}
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == "gateway"
    assert validate(list(objects.values())) == []


def test_notes_name_the_release_and_its_secret(chart: Chart) -> None:
    notes = chart.render_notes()
    assert "deployment/relay" in notes and 'Secret "relay-secrets"' in notes
    assert "8080:8080" in notes


@pytest.mark.parametrize(
    "source",
    ["{{ with .Values }}x{{ end }}", "{{ $x := 1 }}", "{{ .Values.a | upper }}", "{{ if .x }}"],
)
def test_the_renderer_refuses_what_it_does_not_implement(chart: Chart, source: str) -> None:
    root = {"Values": {"a": "b"}, "x": 1}
    with pytest.raises(Unsupported):
        chart._run(parse(source, {}), root, root)
