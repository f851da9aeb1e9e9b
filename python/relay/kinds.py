"""The catalogue of provider kinds: the one place that knows which kinds exist.

Built-in kinds are listed here by name with the module that implements them; plugins add theirs
through the ``relay.providers`` entry-point group of an installed package. Nothing here imports
an adapter: configuration validation (which sits below the providers) asks this module which
kinds exist and what each needs, and only :func:`load` imports the adapter of a kind that a
configuration actually uses.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

log = logging.getLogger("relay")

ENTRY_POINT_GROUP = "relay.providers"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What configuration validation needs to know about a provider kind."""

    name: str
    # "module:attribute" of the adapter class.
    target: str
    # "required": the user must set base_url; "optional": default_base_url applies when unset
    # (or the adapter needs none); "unused": the kind derives its endpoint itself.
    base_url: Literal["required", "optional", "unused"] = "required"
    default_base_url: str | None = None
    # ProviderConfig fields that must be set for this kind.
    required: tuple[str, ...] = ()
    # (module, pip extra) the kind needs installed, e.g. ("botocore", "bedrock").
    needs: tuple[str, str] | None = None
    plugin: bool = False


_P = "relay.providers."
BUILTIN: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("openai", _P + "openai_compat:OpenAICompatible"),
        KindSpec("echo", _P + "echo:EchoProvider", base_url="unused"),
        KindSpec(
            "anthropic",
            _P + "anthropic:AnthropicProvider",
            base_url="optional",
            default_base_url="https://api.anthropic.com/v1",
        ),
        KindSpec("azure", _P + "azure:AzureOpenAI", required=("api_version",)),
        KindSpec(
            "mistral",
            _P + "vendors:Mistral",
            base_url="optional",
            default_base_url="https://api.mistral.ai/v1",
        ),
        KindSpec(
            "ollama",
            _P + "vendors:Ollama",
            base_url="optional",
            default_base_url="http://localhost:11434/v1",
        ),
        KindSpec("vllm", _P + "vendors:VLLM"),
        KindSpec(
            "bedrock",
            _P + "bedrock:Bedrock",
            base_url="unused",
            required=("region",),
            needs=("botocore", "bedrock"),
        ),
    )
}


class PluginGroup:
    """The plugins of one entry-point group, found once and kept until :meth:`refresh`.

    Shared by the provider kinds here and the policy kinds (``relay.policies.registry``): a
    plugin named like a built-in is ignored with a warning naming ``what`` it is, and the first
    of two plugins of one name wins.
    """

    def __init__(self, group: str, builtin: Collection[str], what: str) -> None:
        self.group = group
        self.builtin = builtin
        self.what = what
        self._found: dict[str, EntryPoint] | None = None

    def found(self) -> dict[str, EntryPoint]:
        """The installed plugins by name (built-in names excluded)."""
        if self._found is None:
            found: dict[str, EntryPoint] = {}
            for point in entry_points(group=self.group):
                if point.name in self.builtin:
                    log.warning(
                        "%s plugin %r (%s) ignored: %r is a built-in kind",
                        self.what,
                        point.name,
                        point.value,
                        point.name,
                    )
                    continue
                found.setdefault(point.name, point)
            self._found = found
        return self._found

    def refresh(self) -> None:
        """Forget the plugins found so far (a package was installed since)."""
        self._found = None

    def known(self) -> tuple[str, ...]:
        """Every kind: the built-ins and the installed plugins', sorted."""
        return tuple(sorted({*self.builtin, *self.found()}))


def import_target(target: str) -> Any:
    """The attribute a ``"module:attribute"`` target names, importing its module."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


_PLUGINS = PluginGroup(ENTRY_POINT_GROUP, BUILTIN, "provider")


def refresh() -> None:
    """Forget the plugins found so far (a package was installed since)."""
    _PLUGINS.refresh()


def known_kinds() -> tuple[str, ...]:
    """Every kind a configuration may name: built-in and installed plugins, sorted."""
    return _PLUGINS.known()


def spec(kind: str) -> KindSpec | None:
    """What ``kind`` needs, or None when no built-in or installed plugin provides it."""
    builtin = BUILTIN.get(kind)
    if builtin is not None:
        return builtin
    point = _PLUGINS.found().get(kind)
    if point is None:
        return None
    # A plugin's base_url is its own business: it may default it or need none.
    return KindSpec(kind, point.value, base_url="optional", plugin=True)


def missing_module(spec: KindSpec) -> str | None:
    """The message for a kind whose optional dependency is not installed, else None."""
    if spec.needs is None:
        return None
    module, extra = spec.needs
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"kind {spec.name!r} needs the {module!r} package: "
        f"pip install 'relay-gateway[{extra}]' (or pip install {module})"
    )


def load(kind: str) -> Any:
    """Import and return the adapter class of ``kind`` (raises LookupError if unknown)."""
    found = spec(kind)
    if found is None:
        raise LookupError(f"unknown provider kind {kind!r} (known: {', '.join(known_kinds())})")
    if found.plugin:
        return _PLUGINS.found()[kind].load()
    return import_target(found.target)
