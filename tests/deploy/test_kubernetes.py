"""deploy/kubernetes/: valid against the Kubernetes schemas (kubernetes-validate bundles them,
strict: unknown fields are errors), and consistent with the image and the gateway: probes,
non-root security, a grace period that covers the drain, secrets referenced not stored, a
config that ``relay check-config`` accepts with the pod's environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from relay.config.load import parse_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy/kubernetes"
# The versions the manifests are checked against (kubernetes-validate's bundled schemas): the
# oldest the manifests promise (autoscaling/v2, policy/v1 and the probes are older) and the
# newest the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# granian stops a worker still busy this long after the drain (relay/serve.py:
# workers_kill_timeout = drain_timeout_s + 5)
GRANIAN_KILL_DELAY_S = 5
SECRET_KEYS = {"OPENAI_API_KEY", "RELAY_ADMIN_KEY", "DATABASE_URL", "REDIS_PASSWORD"}


def load_manifests(directory: Path = MANIFESTS) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [doc["kind"] for doc in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in docs}


def validate(docs: list[dict[str, Any]]) -> list[str]:
    """Every problem kubernetes-validate finds, one line each."""
    problems = []
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                problems.append(f"{version} {name}: {exc.message}")
    return problems


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return by_kind(load_manifests())


def test_manifests_are_valid_kubernetes_objects() -> None:
    docs = load_manifests()
    assert {doc["kind"] for doc in docs} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    assert validate(docs) == []


def test_the_validation_has_teeth(objects: dict[str, dict[str, Any]]) -> None:
    deployment = yaml.safe_load(yaml.safe_dump(objects["Deployment"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["port"] = {"name": "http"}  # not int-or-string
    container["livenessprobe"] = container.pop("livenessProbe")  # unknown field (strict)
    problems = validate([deployment])
    assert len(problems) == len(KUBERNETES_VERSIONS), problems
    assert all("Deployment/relay" in p for p in problems), problems


def container_of(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, each secret reference replaced by a sample value."""
    samples = {
        "DATABASE_URL": "postgresql://relay:secret@postgres:5432/relay",
        "REDIS_PASSWORD": "secret",
        "RELAY_ADMIN_KEY": "admin-secret-of-32-characters-xx",
        "OPENAI_API_KEY": "sk-secret",
    }
    env = {}
    for item in container["env"]:
        env[item["name"]] = item["value"] if "value" in item else samples[item["name"]]
    return env


def test_config_map_is_a_valid_relay_config_with_the_pod_environment(
    objects: dict[str, dict[str, Any]],
) -> None:
    container = container_of(objects)
    env = pod_env(container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["RELAY_CONFIG"] == f"{mount['mountPath']}/config.yaml"
    text = objects["ConfigMap"]["data"]["config.yaml"]
    assert container["args"] == ["serve", "--host", "0.0.0.0"]
    config = parse_config(text, str(MANIFESTS / "configmap.yaml"), env, {"--host": "0.0.0.0"})
    assert config.server.host == "0.0.0.0"
    assert config.database.url == env["DATABASE_URL"]
    assert config.redis.enabled and config.redis.address == "redis:6379"
    assert config.auth.admin_key == env["RELAY_ADMIN_KEY"]
    # the port the probes and the Service use
    assert container["ports"][0]["containerPort"] == config.server.port
    grace = objects["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert grace > pre_stop + config.server.drain_timeout_s + GRANIAN_KILL_DELAY_S


def test_probes_security_and_secrets(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = container_of(objects)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # writable places a read-only root needs: the working directory and the metric files
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/tmp"}
    assert {"requests", "limits"} <= set(container["resources"])
    refs = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container["env"]
        if "valueFrom" in item
    }
    assert set(refs) == SECRET_KEYS
    assert all(ref["key"] == name for name, ref in refs.items())
    # nothing secret-looking written in the clear
    assert not any(
        re.search(r"KEY|PASSWORD|URL", e["name"]) for e in container["env"] if "value" in e
    )


def test_service_hpa_and_budget_select_the_pods(objects: dict[str, dict[str, Any]]) -> None:
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # the HPA owns the replica count; a fixed one would be reset by every apply
    assert "replicas" not in deployment["spec"]
    budget = objects["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert budget < objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"
