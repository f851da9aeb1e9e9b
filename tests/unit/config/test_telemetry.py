"""The ``telemetry`` section: off by default, the standard ``OTEL_*`` variables, checks."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_config


def test_off_unless_something_is_exported() -> None:
    telemetry = parse_config("{}\n", "t", env={}).telemetry
    assert (telemetry.traces, telemetry.exports_metrics, telemetry.enabled) == (
        "none",
        False,
        False,
    )
    console = parse_config("telemetry: {traces_exporter: console}\n", "t", env={}).telemetry
    assert (console.traces, console.exports_metrics, console.enabled) == ("console", False, True)


def test_the_standard_variables_override_the_file() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_SERVICE_NAME": "gateway-eu",
    }
    text = "telemetry: {endpoint: http://elsewhere:4318, service_name: relay}\n"
    telemetry = parse_config(text, "t", env=env).telemetry
    assert telemetry.otlp_endpoint == "http://collector:4318"
    assert telemetry.service_name == "gateway-eu"
    assert (telemetry.traces, telemetry.exports_metrics) == ("otlp", True)
    console = parse_config("{}\n", "t", env={"OTEL_TRACES_EXPORTER": "console"}).telemetry
    assert console.traces == "console"
    # otlp without an endpoint: OpenTelemetry's default one.
    default = parse_config("telemetry: {traces_exporter: otlp}\n", "t", env={}).telemetry
    assert default.otlp_endpoint == "http://localhost:4318"


def test_otel_sdk_disabled_turns_everything_off() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    assert not parse_config("{}\n", "t", env=env).telemetry.enabled


def test_every_mistake_is_named() -> None:
    text = (
        "telemetry: {endpoint: collector:4318, sample_ratio: 2, metrics_interval_s: 0,"
        " traces_exporter: jaeger}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t", env={})
    problems = "\n".join(info.value.problems)
    assert "telemetry.endpoint: expected an http(s) URL, got 'collector:4318'" in problems
    assert "telemetry.sample_ratio: expected 0 to 1, got 2" in problems
    assert "telemetry.metrics_interval_s: expected more than 0 seconds, got 0" in problems
    assert "telemetry.traces_exporter" in problems
    with pytest.raises(ConfigError) as info:
        parse_config("{}\n", "t", env={"OTEL_TRACES_EXPORTER": "zipkin"})
    assert "telemetry.traces_exporter (from OTEL_TRACES_EXPORTER)" in "\n".join(info.value.problems)


def test_log_format_and_access_log() -> None:
    server = parse_config("server: {log_format: text, access_log: false}\n", "t", env={}).server
    assert (server.log_format, server.access_log) == ("text", False)
    with pytest.raises(ConfigError) as info:
        parse_config("server: {log_format: xml}\n", "t", env={})
    assert "server.log_format" in "\n".join(info.value.problems)


def test_without_the_extra_telemetry_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_otel(name: str, package: str | None = None) -> object:
        if name.startswith("opentelemetry"):
            return None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_otel)
    with pytest.raises(ConfigError) as info:
        parse_config("telemetry: {traces_exporter: console}\n", "t", env={})
    assert "pip install 'relay-gateway[otel]'" in "\n".join(info.value.problems)
    parse_config("{}\n", "t", env={})  # nothing asked: nothing needed
