"""Mistral, Ollama and vLLM: OpenAI-compatible servers with the quirks their documentation
states (docs/providers.md has the table). Each is a configuration of :class:`OpenAICompatible`.
"""

from __future__ import annotations

from relay.exchange import Endpoint
from relay.providers.openai_compat import OpenAICompatible
from relay.providers.params import ATTRIBUTION, ParamRules


class Mistral(OpenAICompatible):
    """La Plateforme (``https://api.mistral.ai/v1``): chat and embeddings, no legacy
    completions. Mistral names the seed ``random_seed`` and the embedding size
    ``output_dimension``, has no ``stream_options`` (it reports usage on the last chunk of every
    stream), and has no logit bias, log probabilities or end-user field."""

    kind = "mistral"
    endpoints = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})
    forces_usage = False
    params = {
        Endpoint.CHAT: ParamRules(
            unsupported=frozenset(
                {
                    "logit_bias",
                    "logprobs",
                    "top_logprobs",
                    "store",
                    "service_tier",
                    "modalities",
                    "audio",
                }
            ),
            renamed={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
            stripped=frozenset({"stream_options", *ATTRIBUTION}),
        ),
        Endpoint.EMBEDDINGS: ParamRules(
            stripped=ATTRIBUTION, renamed={"dimensions": "output_dimension"}
        ),
    }


class Ollama(OpenAICompatible):
    """Ollama's OpenAI compatibility (``http://localhost:11434/v1``, no key: Ollama ignores
    it). Model names such as ``llama3:8b`` pass unchanged. The documentation lists the fields
    it supports; of OpenAI's, these are not among them."""

    kind = "ollama"
    params = {
        Endpoint.CHAT: ParamRules(unsupported=frozenset({"logit_bias", "n"}), stripped=ATTRIBUTION),
        Endpoint.COMPLETIONS: ParamRules(
            unsupported=frozenset({"best_of", "echo", "logit_bias", "n"}), stripped=ATTRIBUTION
        ),
        Endpoint.EMBEDDINGS: ParamRules(stripped=ATTRIBUTION),
    }


class VLLM(OpenAICompatible):
    """vLLM's OpenAI-compatible server (``vllm serve``; a key only when started with
    ``--api-key``). Its extra sampling parameters (``top_k``, ``min_p``, guided decoding...)
    pass through; the documentation says it ignores ``user`` and ``parallel_tool_calls`` in
    chat and does not support ``suffix`` in completions."""

    kind = "vllm"
    params = {
        Endpoint.CHAT: ParamRules(
            unsupported=frozenset({"parallel_tool_calls"}),
            stripped=ATTRIBUTION,
            takes=frozenset({"top_k"}),
        ),
        Endpoint.COMPLETIONS: ParamRules(unsupported=frozenset({"suffix"}), stripped=ATTRIBUTION),
    }
