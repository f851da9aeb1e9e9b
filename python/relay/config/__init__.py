"""Configuration: schema, loading, validation."""

from relay.config.load import ConfigError, default_config_text, load_config, parse_config
from relay.config.model import Config, ModelConfig, Pricing, ProviderConfig, Target

__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "Pricing",
    "ProviderConfig",
    "Target",
    "default_config_text",
    "load_config",
    "parse_config",
]
