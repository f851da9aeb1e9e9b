"""One catalogue of provider kinds: config validation and the registry ask the same one."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from relay import kinds
from relay.config import ConfigError, parse_config
from relay.providers import ProviderBase, build_providers
from relay.providers.echo import EchoProvider
from relay.providers.registry import PluginError, adapter_class


def test_every_builtin_kind_loads_an_adapter_of_that_kind() -> None:
    for name in kinds.BUILTIN:
        cls = adapter_class(name)
        assert issubclass(cls, ProviderBase)
        assert cls.kind == name


def test_one_adapter_per_configured_provider() -> None:
    config = parse_config(
        "providers: {e: {kind: echo}, o: {kind: openai, base_url: 'http://h/v1'},"
        " m: {kind: mistral, api_key: k}, l: {kind: ollama}}",
        "t",
        {},
    )
    providers = build_providers(config)
    assert {name: p.kind for name, p in providers.items()} == {
        "e": "echo",
        "o": "openai",
        "m": "mistral",
        "l": "ollama",
    }


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("providers: {x: {kind: opneai, base_url: 'http://h'}}", "t", {})
    known = ", ".join(kinds.known_kinds())
    assert err.value.problems == [f"providers.x.kind: unknown kind 'opneai' (known: {known})"]
    assert "azure" in known and "bedrock" in known


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A plugin kind 'inhouse' registered through a (fake) installed entry point."""
    point = EntryPoint("inhouse", "relay.providers.echo:EchoProvider", kinds.ENTRY_POINT_GROUP)
    bad = EntryPoint("broken", "relay.kinds:KindSpec", kinds.ENTRY_POINT_GROUP)
    shadow = EntryPoint("openai", "relay.providers.echo:EchoProvider", kinds.ENTRY_POINT_GROUP)

    def entry_points(group: str) -> list[EntryPoint]:
        return [point, bad, shadow] if group == kinds.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(kinds, "entry_points", entry_points)
    kinds.refresh()
    yield point
    kinds.refresh()


def test_a_plugin_kind_is_valid_in_a_config_as_soon_as_installed(plugin: EntryPoint) -> None:
    assert "inhouse" in kinds.known_kinds()
    config = parse_config("providers: {mine: {kind: inhouse, settings: {team: a}}}", "t", {})
    assert config.providers["mine"].settings == {"team": "a"}
    assert adapter_class("inhouse") is EchoProvider


def test_a_plugin_cannot_shadow_a_builtin_kind(plugin: EntryPoint) -> None:
    assert kinds.spec("openai") is kinds.BUILTIN["openai"]


def test_a_plugin_that_is_not_an_adapter_is_refused_by_name(plugin: EntryPoint) -> None:
    with pytest.raises(PluginError, match=r"'broken'.*subclass of relay\.providers\.ProviderBase"):
        adapter_class("broken")


def test_kind_specific_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            "providers: {a: {kind: azure, base_url: 'https://r.openai.azure.com'},"
            " b: {kind: bedrock, base_url: 'https://x'}, v: {kind: vllm}}",
            "t",
            {},
        )
    assert err.value.problems == [
        "providers.a.api_version: required for kind 'azure'",
        "providers.b.base_url: not used by kind 'bedrock'; use endpoint_url",
        "providers.b.region: required for kind 'bedrock'",
        "providers.v.base_url: required for kind 'vllm'",
    ]


def test_bedrock_without_botocore_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = kinds.importlib.util.find_spec
    monkeypatch.setattr(
        kinds.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "botocore" else real(name, *a),
    )
    with pytest.raises(ConfigError) as err:
        parse_config("providers: {b: {kind: bedrock, region: us-east-1}}", "t", {})
    assert err.value.problems == [
        "providers.b.kind: kind 'bedrock' needs the 'botocore' package: "
        "pip install 'relay-gateway[bedrock]' (or pip install botocore)"
    ]


def test_config_does_not_import_adapters() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from relay.config import parse_config;"
        "parse_config('providers: {b: {kind: bedrock, region: eu-west-1}}', 't', {});"
        "print(sorted(m for m in sys.modules if m.startswith('relay.providers')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
