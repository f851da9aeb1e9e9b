"""Public model name -> deployment, from tables built once at start-up."""

from __future__ import annotations

from functools import lru_cache

from relay.config.model import Config, Pricing
from relay.errors import ModelNotFound
from relay.exchange import Deployment, Exchange
from relay.native import encoding_for_model
from relay.stage import Reply

_LISTED_IN_ERROR = 20


class Router:
    """Resolves ``ex.model`` to a plan: the ordered deployments to try (for now the model's
    first target; strategies, retries and fallback chains extend the plan).

    Models the config does not list go to ``default_provider`` under their own name when one is
    set (the simple form), else they are a 404.
    """

    def __init__(self, config: Config) -> None:
        self._table: dict[str, Deployment] = {}
        for name, model in config.models.items():
            target = model.targets[0]
            self._table[name] = Deployment(
                provider=target.provider,
                upstream_model=target.model or name,
                public_model=name,
                pricing=model.pricing,
                encoding=model.encoding or encoding_for_model(target.model or name),
                drop_unsupported_params=model.drop_unsupported_params,
            )
        # Plans are built once: the request path only looks them up.
        self._plans: dict[str, tuple[Deployment, ...]] = {
            name: (deployment,) for name, deployment in self._table.items()
        }
        self._default = config.default_provider
        names = sorted(self._table)
        shown = ", ".join(names[:_LISTED_IN_ERROR]) + (
            ", ..." if len(names) > _LISTED_IN_ERROR else ""
        )
        self._known = shown or "none"

    def encodings(self) -> set[str]:
        """The token encodings configured models may need for local counting."""
        return {deployment.encoding for deployment in self._table.values()}

    async def __call__(self, ex: Exchange) -> Reply | None:
        plan = self._plans.get(ex.model)
        if plan is None:
            if self._default is None:
                raise ModelNotFound(
                    f"model '{ex.model}' is not configured on this gateway (known: {self._known})",
                    param="model",
                )
            plan = _passthrough(self._default, ex.model)
        ex.deployment = plan[0]
        ex.plan = plan
        return None


@lru_cache(maxsize=1024)
def _passthrough(provider: str, model: str) -> tuple[Deployment, ...]:
    return (Deployment(provider, model, model, Pricing(), encoding_for_model(model)),)
