"""The simple single-upstream form, converted into the full form.

```yaml
server: {port: ":8080"}
proxy: {target: https://api.openai.com}
ratelimit: {enabled: true, requests_per_second: 5, burst: 10}
redis: {enabled: false, address: localhost:6379}   # enabled: also caches deterministic answers
cache: {mode: deterministic, ttl_s: 3600}          # optional: the full form's section
models: {gpt-4o: 0.005}          # USD per 1K tokens (or {input: .., output: ..})
database: {url: none}            # optional: the full form's section (none: no ledger file)
```
Every model, listed or not, is sent to ``proxy.target`` and the caller's own
``Authorization`` header is forwarded.
"""

from __future__ import annotations

from typing import Any

from relay.config.problems import Problems, shown

SIMPLE_PROVIDER = "upstream"
_SIMPLE_KEYS = {
    "server",
    "proxy",
    "ratelimit",
    "redis",
    "limits",
    "models",
    "database",
    "cache",
}


def is_simple_form(raw: dict[str, Any]) -> bool:
    """The simple form is recognised by its ``proxy`` section."""
    return "proxy" in raw


def simple_to_full(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """Return the full-form tree equivalent to a simple-form tree; problems are appended."""
    for key in raw:
        if key not in _SIMPLE_KEYS:
            problems.add(
                str(key),
                f"unknown section in the simple form (known: {', '.join(sorted(_SIMPLE_KEYS))})",
            )
    proxy = raw.get("proxy")
    if not isinstance(proxy, dict):
        problems.add("proxy", f"expected a mapping with `target`, got {shown(proxy)}")
        proxy = {}
    target = proxy.get("target")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        problems.add("proxy.target", f"expected an http(s) URL, got {shown(target)}")
        target = "http://invalid"
    for key in proxy:
        if key not in ("target", "api_key"):
            problems.add(f"proxy.{key}", "unknown field (known: api_key, target)")
    base_url = target.rstrip("/")
    if not base_url.endswith("/v1"):
        base_url += "/v1"
    provider: dict[str, Any] = {
        "kind": "openai",
        "base_url": base_url,
        "forward_client_auth": True,
    }
    if proxy.get("api_key"):
        provider["api_key"] = proxy["api_key"]

    models: dict[str, Any] = {}
    raw_models = raw.get("models") or {}
    if not isinstance(raw_models, dict):
        problems.add("models", "expected a mapping of model name to USD price per 1K tokens")
        raw_models = {}
    for name, price in raw_models.items():
        pricing = _per_million(price, f"models.{name}", problems)
        models[str(name)] = {"provider": SIMPLE_PROVIDER, "pricing": pricing}

    full: dict[str, Any] = {
        "providers": {SIMPLE_PROVIDER: provider},
        "models": models,
        "default_provider": SIMPLE_PROVIDER,
    }
    for key in ("server", "ratelimit", "redis", "limits", "database", "cache"):
        if key in raw:
            full[key] = raw[key]
    _cache_with_redis(full)
    return full


def _cache_with_redis(full: dict[str, Any]) -> None:
    """Seed Relay's promise: ``redis.enabled: true`` caches deterministic answers in Redis,
    unless the ``cache`` section says otherwise."""
    redis = full.get("redis")
    if not (isinstance(redis, dict) and redis.get("enabled") is True):
        return
    cache = full.get("cache")
    if cache is None:
        cache = full["cache"] = {}
    if isinstance(cache, dict) and "mode" not in cache:
        cache["mode"] = "deterministic"


def _per_million(price: Any, path: str, problems: Problems) -> dict[str, float]:
    """Convert a price per 1K tokens (one number, or input/output) into the full form's per 1M."""
    if isinstance(price, bool) or not isinstance(price, int | float | dict):
        problems.add(path, f"expected a price in USD per 1K tokens, got {shown(price)}")
        return {}
    if isinstance(price, dict):
        out: dict[str, float] = {}
        for key, value in price.items():
            if key not in ("input", "output", "cached"):
                problems.add(f"{path}.{key}", "unknown field (known: cached, input, output)")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                problems.add(f"{path}.{key}", f"expected a price of 0 or more, got {shown(value)}")
            else:
                out[key] = float(value) * 1000
        return out
    if price < 0:
        problems.add(path, f"expected a price of 0 or more, got {price}")
        return {}
    return {"input": float(price) * 1000, "output": float(price) * 1000}
