"""Public model name -> an ordered plan of deployments, from tables built once at start-up.

The routing stage resolves ``ex.model`` (a configured model; ``routing.default_model`` when the
request names none; ``provider/model`` when ``routing.allow_direct``; else, with
``default_provider``, the model under its own name) and lets the model's balancer order its
targets. Requests that override their fallbacks or timeout (``x-relay-fallbacks``,
``x-relay-timeout``) are checked here, before anything is sent.
"""

from __future__ import annotations

from relay.config.model import (
    Config,
    Pricing,
    RateQuota,
    RetryBudgetConfig,
    RetryConfig,
    TimeoutOverrides,
    Timeouts,
)
from relay.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied
from relay.exchange import Deployment, Endpoint, Exchange
from relay.ingress.headers import positive_seconds
from relay.native import encoding_for_model
from relay.routing.balance import Balancer, Slot
from relay.routing.breaker import Breakers
from relay.routing.budget import RetryBudget
from relay.routing.route import ModelRoute, RouteState
from relay.stage import Reply

FALLBACKS_HEADER = "x-relay-fallbacks"
TIMEOUT_HEADER = "x-relay-timeout"
_LISTED_IN_ERROR = 20
_MAX_CACHED = 4096
_NO_RETRIES = RetryConfig(max=0)


class Router:
    """The routing stage, and the tables the attempt policy walks (routes and slots)."""

    def __init__(
        self,
        config: Config,
        breakers: Breakers | None = None,
        *,
        slots: dict[str, Slot] | None = None,
    ) -> None:
        """``breakers`` and ``slots`` (:attr:`slots_by_key`) are the router's that this one
        replaces on a hot reload: breakers, calls in flight and latency averages are kept by
        deployment name, so an open breaker stays open across the swap."""
        self.config = config
        self.breakers = breakers or Breakers(config.routing.breaker)
        self.breakers.configure(config.routing.breaker)
        self._slots: dict[int, Slot] = {}  # id(deployment) -> slot; deployments live forever
        # provider/upstream model -> slot; shared with the routers before and after a reload
        self.slots_by_key: dict[str, Slot] = {} if slots is None else slots
        self._slots_by_key = self.slots_by_key
        self._deployments: dict[tuple[str, str], Deployment] = {}
        # A deployment's quota, wherever a target declared it (check-config makes them agree).
        self._quotas: dict[tuple[str, str], RateQuota] = {
            (target.provider, target.model or name): target.limits
            for name, model in config.models.items()
            for target in model.targets
            if target.limits is not None
        }
        self.routes: dict[str, ModelRoute] = {name: self._build(name) for name in config.models}
        self._cached: dict[str, ModelRoute] = {}
        self._default_model = config.routing.default_model
        self._default = config.default_provider
        passthrough = config.routing.passthrough_provider
        # Pass-through routes that name no model (files, batches, ...) go to this provider.
        self._passthrough = (
            Deployment(passthrough, "", "", Pricing()) if passthrough is not None else None
        )
        names = sorted(self.routes)
        shown = ", ".join(names[:_LISTED_IN_ERROR]) + (
            ", ..." if len(names) > _LISTED_IN_ERROR else ""
        )
        self._known = shown or "none"

    # -- start-up ----------------------------------------------------------------------------
    def _build(self, name: str) -> ModelRoute:
        model = self.config.models[name]
        deployments = []
        for target in model.targets:
            upstream = target.model or name
            provider = self.config.providers.get(target.provider)
            timeouts = resolve_timeouts(
                provider.timeouts if provider else Timeouts(), model.timeouts
            )
            deployment = Deployment(
                provider=target.provider,
                upstream_model=upstream,
                public_model=name,
                pricing=model.pricing,
                encoding=model.encoding or encoding_for_model(upstream),
                drop_unsupported_params=model.drop_unsupported_params,
                timeouts=timeouts,
                limits=self._quotas.get((target.provider, upstream)),
            )
            self._slots[id(deployment)] = self._slot(f"{target.provider}/{upstream}")
            self._deployments.setdefault((target.provider, upstream), deployment)
            deployments.append(deployment)
        retry = model.retries
        if retry is None:  # each target once, no waiting
            retry = RetryConfig(max=len(deployments) - 1)
        elif isinstance(retry, int):
            retry = RetryConfig(max=retry)
        balancer = Balancer(
            deployments,
            [t.weight for t in model.targets],
            [self._slots[id(d)] for d in deployments],
            model.strategy,
        )
        return ModelRoute(
            name,
            balancer,
            1 + retry.max,
            retry,
            frozenset(retry.on_status),
            tuple(model.fallbacks),
            tuple(model.context_window_fallbacks),
            tuple(model.content_policy_fallbacks),
        )

    def _slot(self, key: str) -> Slot:
        slot = self._slots_by_key.get(key)
        settings = self.config.routing.retry_budget
        if slot is None:
            slot = self._slots_by_key[key] = Slot(
                key, self.breakers.get(key), RetryBudget(settings)
            )
        elif _budget_changed(slot.budget, settings):  # reloaded with another budget
            slot.budget = RetryBudget(settings)
        return slot

    @property
    def has_quotas(self) -> bool:
        """Does any deployment have a quota of its own (``targets[].limits``)?"""
        return bool(self._quotas)

    def encodings(self) -> set[str]:
        """The token encodings configured models may need for local counting."""
        return {d.encoding for route in self.routes.values() for d in route.balancer.orders[0]}

    # -- the attempt policy's look-ups -------------------------------------------------------
    def slot(self, deployment: Deployment) -> Slot:
        """The live state of ``deployment`` (shared by every model that uses it)."""
        slot = self._slots.get(id(deployment))
        if slot is None:  # a deployment made on demand: its provider's slot
            key = f"{deployment.provider}/{deployment.upstream_model}"
            slot = self._slots_by_key.get(key) or self._slot(deployment.provider)
        return slot

    def route(self, name: str) -> ModelRoute | None:
        """A configured model's route."""
        return self.routes.get(name)

    # -- the stage ---------------------------------------------------------------------------
    async def __call__(self, ex: Exchange) -> Reply | None:
        route = self.routes.get(ex.model)
        if route is None:
            if not ex.model and ex.endpoint is Endpoint.PASSTHROUGH:
                self._modelless(ex)
                return None
            route = self._resolve(ex)
        ex.route = route
        ex.plan = plan = route.balancer.order()
        ex.deployment = plan[0]
        headers = ex.headers
        fallbacks, timeout = headers.get(FALLBACKS_HEADER), headers.get(TIMEOUT_HEADER)
        if fallbacks is not None or timeout is not None:
            ex.route = RouteState(route, _fallbacks(fallbacks, self.routes), _timeout(timeout))
        return None

    def _modelless(self, ex: Exchange) -> None:
        """A pass-through route that names no model: the pass-through provider, for keys that
        may use any model (a key restricted to some cannot reach routes that name none)."""
        allowed = ex.principal.allowed_models
        if allowed is not None:
            raise PermissionDenied(
                f"/v1{ex.path} names no model, and this key may use only "
                f"{', '.join(sorted(allowed)) or 'none'}"
            )
        if self._passthrough is None:
            raise NotFound(
                f"/v1{ex.path}: the request names no model and this gateway has no "
                "routing.passthrough_provider"
            )
        ex.deployment = self._passthrough
        ex.plan = (self._passthrough,)

    def _resolve(self, ex: Exchange) -> ModelRoute:
        name = ex.model
        if not name:
            if self._default_model is None:
                raise InvalidRequest(
                    "model: required (this gateway has no routing.default_model)", param="model"
                )
            ex.model = self._default_model
            ex.model_defaulted = True
            return self.routes[self._default_model]
        route = self._cached.get(name)
        if route is not None:
            return route
        provider, slash, upstream = name.partition("/")
        direct = self.config.routing.allow_direct and provider in self.config.providers
        if slash and upstream and direct:
            route = self._on_demand(provider, upstream, name)
        if route is None:
            if self._default is None:
                raise ModelNotFound(
                    f"model '{name}' is not configured on this gateway (known: {self._known})",
                    param="model",
                )
            route = self._on_demand(self._default, name, name)
        if len(self._cached) < _MAX_CACHED:
            self._cached[name] = route
        return route

    def _on_demand(self, provider: str, upstream: str, public: str) -> ModelRoute:
        """A one-target route for a name the config does not list (priced like the
        configured deployment it names, if any; else at 0)."""
        known = self._deployments.get((provider, upstream))
        config = self.config.providers[provider]
        deployment = Deployment(
            provider,
            upstream,
            public,
            known.pricing if known else Pricing(),
            known.encoding if known else encoding_for_model(upstream),
            drop_unsupported_params=known.drop_unsupported_params if known else False,
            timeouts=known.timeouts if known else config.timeouts,
            limits=self._quotas.get((provider, upstream)),
        )
        slot = self.slot(known) if known else self._slot(provider)
        balancer = Balancer((deployment,), (1.0,), (slot,), "weighted")
        return ModelRoute(public, balancer, 1, _NO_RETRIES, frozenset())


def _budget_changed(budget: RetryBudget, settings: RetryBudgetConfig) -> bool:
    return (budget.ratio, budget.min_retries, budget.window_s) != (
        settings.ratio,
        settings.min_retries,
        settings.window_s,
    )


def resolve_timeouts(provider: Timeouts, model: TimeoutOverrides | None) -> Timeouts:
    """A deployment's timeouts: the model's where set, else the provider's."""
    if model is None:
        return Timeouts(
            provider.connect_s,
            provider.read_s,
            provider.total_s,
            provider.first_byte,
            provider.idle,
        )
    read = model.read_s
    return Timeouts(
        connect_s=model.connect_s or provider.connect_s,
        read_s=read or provider.read_s,
        total_s=model.total_s or provider.total_s,
        first_byte_s=model.first_byte_s or read or provider.first_byte,
        idle_s=model.idle_s or read or provider.idle,
    )


def _fallbacks(value: str | None, routes: dict[str, ModelRoute]) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in routes]
    if unknown:
        raise InvalidRequest(
            f"{FALLBACKS_HEADER}: {', '.join(map(repr, unknown))} not configured "
            f"(known: {', '.join(sorted(routes)) or 'none'})"
        )
    return names


def _timeout(value: str | None) -> float | None:
    return None if value is None else positive_seconds(TIMEOUT_HEADER, value)
