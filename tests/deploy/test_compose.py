"""docker-compose.yml: valid against the Compose Specification's schema, every file it
mounts or builds from exists, and its parts fit together (health conditions, the gateway's
config, the ports Prometheus and Grafana are pointed at).

The schema is tests/deploy/compose-spec.json, the Compose Specification's own
(github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0): nothing is
downloaded at test time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from relay.config import read_config
from relay.config.discover import ConfigSource

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
_DURATION = re.compile(r"^(\d+)s$")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load(COMPOSE)
    return data


def test_compose_file_is_valid_against_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_what_compose_rejects(compose: dict[str, Any]) -> None:
    # The check has teeth: a misspelled key and a bad condition are errors.
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["relay"]["helthcheck"] = broken["services"]["relay"].pop("healthcheck")
    broken["services"]["relay"]["depends_on"]["redis"]["condition"] = "service_ready"
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("helthcheck" in m for m in messages), messages
    assert any("service_ready" in m for m in messages), messages


def bind_sources(service: dict[str, Any]) -> list[str]:
    """Host paths of a service's bind mounts (short and long syntax)."""
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
        else:
            source = volume.get("source", "") if volume.get("type") == "bind" else ""
        if source.startswith((".", "/")):
            sources.append(source)
    return sources


def test_every_referenced_file_exists(compose: dict[str, Any]) -> None:
    missing = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            if not (context / (dockerfile or "Dockerfile")).is_file():
                missing.append(f"{name}: build {context}")
        for source in bind_sources(service):
            if not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            if not (ROOT / path).is_file():
                missing.append(f"{name}: env_file {path}")
    assert not missing, missing
    # what was found is what the stack needs (a renamed file would drop out of the list above)
    mounted = {s for service in compose["services"].values() for s in bind_sources(service)}
    assert {
        "./deploy/compose/relay.yaml",
        "./deploy/otel/collector.yaml",
        "./deploy/prometheus/compose.yml",
        "./deploy/grafana/relay-dashboard.json",
        "./deploy/grafana/provisioning/datasources",
        "./deploy/grafana/provisioning/dashboards",
    } <= mounted


def test_health_conditions_name_services_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"relay", "redis", "postgres", "prometheus", "grafana"}
    assert any("opentelemetry-collector" in s.get("image", "") for s in services.values())
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health"
    # the gateway starts only once its stores answer
    waits = services["relay"]["depends_on"]
    assert waits["postgres"]["condition"] == waits["redis"]["condition"] == "service_healthy"
    declared = set(compose.get("volumes", {}))
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else ""
            if source and not source.startswith((".", "/")):
                assert source in declared, f"named volume {source} is not declared"


def test_gateway_config_is_valid_with_the_compose_environment(compose: dict[str, Any]) -> None:
    relay = compose["services"]["relay"]
    # ${VAR:-default} as compose substitutes it with nothing set
    env = {
        key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        for key, value in relay["environment"].items()
    }
    path = ROOT / "deploy/compose/relay.yaml"
    config = read_config(ConfigSource(path, "docker-compose.yml"), env)
    assert config.database.url.startswith("postgresql://relay:")
    assert config.redis.enabled and config.redis.address == "redis:6379"
    assert config.telemetry.endpoint == "http://otel-collector:4318"
    # the port the healthcheck and the published port use
    assert relay["ports"] == [f"127.0.0.1:{config.server.port}:{config.server.port}"]
    grace = _DURATION.match(relay["stop_grace_period"])
    assert grace is not None
    # granian stops a worker drain_timeout_s + 5 s after SIGTERM: the grace covers both
    assert int(grace.group(1)) > config.server.drain_timeout_s + 5


def test_prometheus_scrapes_the_gateway_and_grafana_reads_prometheus(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    scrape = load(ROOT / "deploy/prometheus/compose.yml")["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["relay:8080"]
    prometheus_port = services["prometheus"]["ports"][0].rsplit(":", 1)[1]
    sources = load(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml")
    assert sources["datasources"][0]["url"] == f"http://prometheus:{prometheus_port}"
    providers = load(ROOT / "deploy/grafana/provisioning/dashboards/relay.yaml")["providers"]
    dashboards_dir = providers[0]["options"]["path"]
    targets = [v.split(":")[1] for v in services["grafana"]["volumes"] if isinstance(v, str)]
    assert f"{dashboards_dir}/relay-dashboard.json" in targets
    collector = load(ROOT / "deploy/otel/collector.yaml")
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
