"""Building the configured policies: each ``policies:`` block by its kind (a built-in imported
only when used, or a plugin of the ``relay.middleware`` entry-point group), and the chain each
request runs: the global ``middleware``, then ``models.<model>.policies``, then
``tenant_policies.<tenant>``, a policy named twice running once, where first named.

Every mistake is reported by its path (``policies.pii.entities.fax: ...``,
``middleware[1]: unknown policy 'x'``) through :func:`check_policies`, which check-config and
reload run; :func:`build_policies` is what the app calls on a configuration that passed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from relay.config.problems import Problems, unknown
from relay.kinds import PluginGroup, import_target
from relay.policies.base import BUILTIN_KINDS, ENTRY_POINT_GROUP, Policy, PolicyFactory, PolicySpec

if TYPE_CHECKING:
    from relay.config.model import Config
    from relay.stage import AnswerHook, StreamHook, Tap

log = logging.getLogger("relay")

__all__ = ["Chain", "Policies", "build_policies", "check_policies", "known_kinds", "refresh"]


_PLUGINS = PluginGroup(ENTRY_POINT_GROUP, BUILTIN_KINDS, "middleware")


def refresh() -> None:
    """Forget the plugins found so far (a package was installed since)."""
    _PLUGINS.refresh()


def known_kinds() -> tuple[str, ...]:
    """Every kind a policy may name: the built-ins and the installed plugins'."""
    return _PLUGINS.known()


def _factory(kind: str) -> PolicyFactory:
    """The factory of ``kind``; LookupError when no built-in or plugin provides it."""
    target = BUILTIN_KINDS.get(kind)
    if target is not None:
        return cast(PolicyFactory, import_target(target))
    point = _PLUGINS.found().get(kind)
    if point is None:
        raise LookupError(kind)
    return cast(PolicyFactory, point.load())


@dataclass(frozen=True, slots=True)
class Chain:
    """The policies one request runs, in order, and those of them that look at answers."""

    policies: tuple[Policy, ...]
    answer_hooks: tuple[AnswerHook, ...]
    stream_hooks: tuple[StreamHook, ...]
    taps: tuple[Tap, ...]

    @property
    def observes(self) -> bool:
        """Some policy of the chain looks at the answer or the finished exchange."""
        return bool(self.answer_hooks or self.stream_hooks or self.taps)


def _chain(policies: Sequence[Policy]) -> Chain:
    unique: dict[int, Policy] = {}
    for policy in policies:
        unique.setdefault(id(policy), policy)
    ordered = tuple(unique.values())
    return Chain(
        ordered,
        tuple(p.answer_hook for p in ordered if p.answer_hook is not None),
        tuple(p.stream_hook for p in ordered if p.stream_hook is not None),
        tuple(p.tap for p in ordered if p.tap is not None),
    )


_EMPTY = _chain(())


class Policies:
    """The built policies and every chain a request can run, decided at build time: a
    request's chain is one dict look-up by (model, tenant)."""

    def __init__(
        self,
        by_name: Mapping[str, Policy],
        middleware: Sequence[str],
        per_model: Mapping[str, Sequence[str]],
        per_tenant: Mapping[str, Sequence[str]],
    ) -> None:
        self.by_name = dict(by_name)

        def named(names: Sequence[str]) -> list[Policy]:
            return [self.by_name[n] for n in names]

        base = named(middleware)
        models = {m: named(names) for m, names in per_model.items() if names}
        tenants = {t: named(names) for t, names in per_tenant.items() if names}
        self._models = frozenset(models)
        self._tenants = frozenset(tenants)
        self._chains: dict[tuple[str | None, str | None], Chain] = {}
        for model in (None, *models):
            for tenant in (None, *tenants):
                parts = base + models.get(model or "", []) + tenants.get(tenant or "", [])
                self._chains[(model, tenant)] = _chain(parts) if parts else _EMPTY

    @property
    def empty(self) -> bool:
        """No request runs any policy."""
        return all(not c.policies for c in self._chains.values())

    def chain(self, model: str, tenant: str) -> Chain:
        """The chain of a request for ``model`` (as the client named it) from ``tenant``."""
        key = (
            model if model in self._models else None,
            tenant if tenant in self._tenants else None,
        )
        return self._chains[key]

    def chains(self) -> list[Chain]:
        """Every distinct chain (for the app to know which hooks to list)."""
        return list(self._chains.values())


def check_policies(config: Config, problems: Problems) -> dict[str, Policy]:
    """Build every configured policy, adding each problem by its path; return those built."""
    built: dict[str, Policy] = {}
    for name, block in config.policies.items():
        path = f"policies.{name}"
        if not isinstance(block, Mapping):
            problems.add(path, "expected a mapping with a 'kind'")
            continue
        kind = block.get("kind")
        if not isinstance(kind, str) or not kind:
            problems.add(f"{path}.kind", f"required: one of {', '.join(known_kinds())}")
            continue
        try:
            factory = _factory(kind)
        except LookupError:
            problems.add(f"{path}.kind", unknown("policy kind", kind, known_kinds()))
            continue
        except ImportError as exc:
            problems.add(f"{path}.kind", f"kind {kind!r} could not be loaded: {exc}")
            continue
        settings = {k: v for k, v in block.items() if k != "kind"}
        try:
            policy = factory(PolicySpec(name, kind, settings, config))
        except ValueError as exc:
            where, sep, what = str(exc).partition(": ")
            if sep and where.startswith(path):
                problems.add(where, what)
            else:
                problems.add(path, str(exc))
            continue
        except Exception as exc:  # a plugin's bug: reported, not a crash of check-config
            problems.add(path, f"the {kind!r} kind failed to build: {exc!r}")
            continue
        built[name] = policy
    _check_names(config, problems)
    return built


def _check_names(config: Config, problems: Problems) -> None:
    """Names in ``middleware``, ``models.X.policies`` and ``tenant_policies`` must exist."""
    defined = config.policies

    def each(path: str, names: Sequence[Any]) -> None:
        for i, name in enumerate(names):
            if name not in defined:
                problems.add(f"{path}[{i}]", unknown("policy", str(name), defined))

    each("middleware", config.middleware)
    for model_name, model in config.models.items():
        each(f"models.{model_name}.policies", model.policies)
    for tenant, names in config.tenant_policies.items():
        each(f"tenant_policies.{tenant}", names)


class PolicyConfigError(ValueError):
    """The policies of a configuration that did not pass :func:`check_policies`."""


def build_policies(config: Config) -> Policies:
    """The policies of a configuration that passed check-config (raises
    :class:`PolicyConfigError` with every problem otherwise)."""
    problems = Problems()
    built = check_policies(config, problems) if config.policies else {}
    if not config.policies:
        _check_names(config, problems)
    if problems:
        raise PolicyConfigError("; ".join(problems.lines()))
    return Policies(
        built,
        config.middleware,
        {name: model.policies for name, model in config.models.items()},
        config.tenant_policies,
    )
