"""Checks of the routing settings: strategies, weights, retries, fallback chains, timeouts,
breakers and the retry budget (see :mod:`relay.routing`)."""

from __future__ import annotations

from relay.config.model import NEVER_RETRIED, STRATEGIES, Config, ModelConfig, RetryConfig
from relay.config.problems import Problems, unknown

_CHAINS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
_MAX_RETRIES = 10


def check_routing(config: Config, problems: Problems) -> None:
    """Append every problem of the routing section and of each model's routing fields."""
    for name, model in config.models.items():
        _check_model(config, name, model, problems)
    routing = config.routing
    if routing.default_model is not None and routing.default_model not in config.models:
        problems.add(
            "routing.default_model", unknown("model", routing.default_model, config.models)
        )
    budget, breaker = routing.retry_budget, routing.breaker
    _at_least(problems, "routing.retry_budget.ratio", budget.ratio, 0.0)
    _at_least(problems, "routing.retry_budget.min_retries", budget.min_retries, 0)
    _positive(problems, "routing.retry_budget.window_s", budget.window_s)
    if not 0 < breaker.failure_rate <= 1:
        problems.add(
            "routing.breaker.failure_rate",
            f"expected a share above 0 and at most 1, got {breaker.failure_rate}",
        )
    _at_least(problems, "routing.breaker.min_requests", breaker.min_requests, 1)
    _at_least(problems, "routing.breaker.half_open_probes", breaker.half_open_probes, 1)
    _positive(problems, "routing.breaker.window_s", breaker.window_s)
    _positive(problems, "routing.breaker.cooldown_s", breaker.cooldown_s)
    passthrough = routing.passthrough_provider
    if passthrough is not None and passthrough not in config.providers:
        problems.add(
            "routing.passthrough_provider", unknown("provider", passthrough, config.providers)
        )
    if routing.max_request_timeout_s is not None:
        _positive(problems, "routing.max_request_timeout_s", routing.max_request_timeout_s)


def _check_model(config: Config, name: str, model: ModelConfig, problems: Problems) -> None:
    path = f"models.{name}"
    if model.strategy not in STRATEGIES:
        problems.add(f"{path}.strategy", unknown("strategy", model.strategy, STRATEGIES))
    for i, target in enumerate(model.targets):
        if target.weight < 0:
            problems.add(f"{path}.targets[{i}].weight", f"expected 0 or more, got {target.weight}")
    if model.targets and all(t.weight <= 0 for t in model.targets):
        problems.add(f"{path}.targets", "at least one target needs a weight above 0")
    retries = model.retries
    if isinstance(retries, int):
        _retry_count(problems, f"{path}.retries", retries)
    elif isinstance(retries, RetryConfig):
        _check_retries(f"{path}.retries", retries, problems)
    for chain in _CHAINS:
        seen: set[str] = set()
        for i, other in enumerate(getattr(model, chain)):
            where = f"{path}.{chain}[{i}]"
            if other == name:
                problems.add(where, "a model cannot fall back to itself")
            elif other not in config.models:
                problems.add(where, unknown("model", other, config.models))
            elif other in seen:
                problems.add(where, f"{other!r} is already in the chain")
            seen.add(other)
    if model.timeouts is not None:
        for field_name in ("connect_s", "read_s", "first_byte_s", "idle_s", "total_s"):
            value = getattr(model.timeouts, field_name)
            if value is not None:
                _positive(problems, f"{path}.timeouts.{field_name}", value)


def _check_retries(path: str, retries: RetryConfig, problems: Problems) -> None:
    _retry_count(problems, f"{path}.max", retries.max)
    _at_least(problems, f"{path}.backoff_base_s", retries.backoff_base_s, 0.0)
    _at_least(problems, f"{path}.backoff_max_s", retries.backoff_max_s, 0.0)
    _at_least(problems, f"{path}.retry_after_max_s", retries.retry_after_max_s, 0.0)
    for i, status in enumerate(retries.on_status):
        if status in NEVER_RETRIED:
            problems.add(
                f"{path}.on_status[{i}]",
                f"{status} is never retried: the request itself is wrong "
                f"({', '.join(map(str, NEVER_RETRIED))} never are)",
            )
        elif not 400 <= status <= 599:
            problems.add(f"{path}.on_status[{i}]", f"expected an HTTP error status, got {status}")


def _retry_count(problems: Problems, path: str, value: int) -> None:
    if not 0 <= value <= _MAX_RETRIES:
        problems.add(path, f"expected 0 to {_MAX_RETRIES} retries, got {value}")


def _at_least(problems: Problems, path: str, value: float, low: float) -> None:
    if value < low:
        problems.add(path, f"expected {low:g} or more, got {value}")


def _positive(problems: Problems, path: str, value: float) -> None:
    if value <= 0:
        problems.add(path, f"expected more than 0, got {value}")
