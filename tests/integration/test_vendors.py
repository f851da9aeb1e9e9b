"""Azure OpenAI, Mistral, Ollama and vLLM through the real server with the openai SDK, against
fakes that check each vendor's documented URL, query, auth and body rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.vendor_upstream import (
    API_VERSION,
    AZURE_KEY,
    AZURE_TOKEN,
    MISTRAL_KEY,
    VLLM_KEY,
    FakeVendors,
    start_fake_vendors,
)
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

MESSAGES: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello world"},
]


@pytest.fixture(scope="module")
def vendors() -> Iterator[FakeVendors]:
    with start_fake_vendors() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(vendors: FakeVendors, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = vendors.url
    azure = {"kind": "azure", "base_url": f"{url}/azure", "api_version": API_VERSION}
    config = {
        "providers": {
            "azure": {**azure, "api_key": AZURE_KEY},
            "azure-entra": {**azure, "bearer_token": AZURE_TOKEN},
            "mistral": {"kind": "mistral", "base_url": f"{url}/mistral/v1", "api_key": MISTRAL_KEY},
            "ollama": {"kind": "ollama", "base_url": f"{url}/ollama/v1"},
            "vllm": {"kind": "vllm", "base_url": f"{url}/vllm/v1", "api_key": VLLM_KEY},
        },
        "models": {
            "gpt-4o": {"provider": "azure", "model": "gpt4o-prod"},
            "gpt-4o-entra": {"provider": "azure-entra", "model": "gpt4o-prod"},
            "gpt-35": {"provider": "azure", "model": "gpt35-legacy"},
            "embed": {"provider": "azure", "model": "embed-small"},
            "no-deployment": {"provider": "azure", "model": "missing"},
            "mistral-small": {"provider": "mistral", "model": "mistral-small-latest"},
            "mistral-embed": {"provider": "mistral"},
            "llama3:8b": {"provider": "ollama"},
            "nomic-embed-text:latest": {"provider": "ollama"},
            "ollama-lenient": {
                "provider": "ollama",
                "model": "llama3:8b",
                "drop_unsupported_params": True,
            },
            "qwen": {"provider": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct"},
            "vllm-broken": {"provider": "vllm", "model": "error-500"},
        },
    }
    gw = Gateway(config, tmp_path_factory.mktemp("vendors"))
    yield gw
    gw.stop()


@pytest.fixture
def fake(vendors: FakeVendors) -> FakeVendors:
    vendors.recorder.reset()
    return vendors


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=20)


# -- Azure ---------------------------------------------------------------------------------
def test_azure_deployment_url_api_version_and_key(gateway: Gateway, fake: FakeVendors) -> None:
    reply = sdk(gateway).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    entry = fake.recorder.last()
    assert entry["path"] == "/azure/openai/deployments/gpt4o-prod/chat/completions"
    assert entry["query"] == {"api-version": API_VERSION}
    assert entry["headers"]["api-key"] == AZURE_KEY and "authorization" not in entry["headers"]
    assert reply.choices[0].message.content == "Echo: hello world"
    assert reply.usage is not None and reply.usage.total_tokens == 10 + 3


def test_azure_bearer_token_instead_of_the_key(gateway: Gateway, fake: FakeVendors) -> None:
    sdk(gateway).chat.completions.create(model="gpt-4o-entra", messages=MESSAGES)
    headers = fake.recorder.last()["headers"]
    assert headers["authorization"] == f"Bearer {AZURE_TOKEN}" and "api-key" not in headers


def test_azure_stream_completions_and_embeddings(gateway: Gateway, fake: FakeVendors) -> None:
    client = sdk(gateway)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert fake.recorder.last()["json"]["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hello world"
    assert all(c.usage is None for c in chunks)  # forced upstream, stripped for the client
    legacy = client.completions.create(model="gpt-35", prompt="hi there")
    assert fake.recorder.last()["path"].endswith("/deployments/gpt35-legacy/completions")
    assert legacy.choices[0].text == "Echo: hi there"
    vectors = client.embeddings.create(model="embed", input=["a b", "c"])
    assert fake.recorder.last()["path"].endswith("/deployments/embed-small/embeddings")
    assert len(vectors.data) == 2 and vectors.usage.prompt_tokens == 3


def test_azure_missing_deployment_passes_azures_404(gateway: Gateway, fake: FakeVendors) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        sdk(gateway).chat.completions.create(model="no-deployment", messages=MESSAGES)
    assert err.value.code == "DeploymentNotFound"


# -- Mistral -------------------------------------------------------------------------------
def test_mistral_renames_seed_and_max_completion_tokens(
    gateway: Gateway, fake: FakeVendors
) -> None:
    sdk(gateway).chat.completions.create(
        model="mistral-small", messages=MESSAGES, seed=7, max_completion_tokens=50
    )
    body = fake.recorder.last()["json"]
    assert body["random_seed"] == 7 and body["max_tokens"] == 50
    assert "seed" not in body and "max_completion_tokens" not in body
    assert body["model"] == "mistral-small-latest"


def test_mistral_stream_usage_without_stream_options(gateway: Gateway, fake: FakeVendors) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="mistral-small",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "stream_options" not in fake.recorder.last()["json"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: hello world"
    )
    usage = [c.usage for c in chunks if c.usage]
    assert usage and (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (10, 3)


def test_mistral_refuses_what_it_cannot_do(gateway: Gateway, fake: FakeVendors) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="mistral-small", messages=MESSAGES, logit_bias={"1": 1}
        )
    assert err.value.param == "logit_bias" and err.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as legacy:
        client.completions.create(model="mistral-small", prompt="hi")
    assert "does not serve /v1/completions" in legacy.value.message
    assert fake.recorder.requests == []
    client.embeddings.create(model="mistral-embed", input="a b", dimensions=256)
    assert fake.recorder.last()["json"]["output_dimension"] == 256


# -- Ollama --------------------------------------------------------------------------------
def test_ollama_model_names_with_a_colon_and_no_key(gateway: Gateway, fake: FakeVendors) -> None:
    client = sdk(gateway)
    reply = client.chat.completions.create(model="llama3:8b", messages=MESSAGES)
    entry = fake.recorder.last()
    assert entry["json"]["model"] == "llama3:8b" and "authorization" not in entry["headers"]
    assert reply.model == "llama3:8b"
    assert client.models.retrieve("llama3:8b").id == "llama3:8b"
    stream = client.chat.completions.create(
        model="llama3:8b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert [c.usage.total_tokens for c in stream if c.usage] == [13]
    vectors = client.embeddings.create(model="nomic-embed-text:latest", input="x y")
    assert vectors.data[0].embedding == [0.1, 0.2, 0.3]


def test_ollama_unsupported_parameter_and_drop(gateway: Gateway, fake: FakeVendors) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="llama3:8b", messages=MESSAGES, n=2)
    assert err.value.param == "n" and "ollama" in err.value.message
    # attribution fields are the gateway's to record: dropped, never a 400
    client.chat.completions.create(model="llama3:8b", messages=MESSAGES, user="u-1")
    assert "user" not in fake.recorder.last()["json"]
    client.chat.completions.create(model="ollama-lenient", messages=MESSAGES, user="u-1", n=1)
    body = fake.recorder.last()["json"]
    assert "user" not in body and "n" not in body and body["model"] == "llama3:8b"


# -- vLLM ----------------------------------------------------------------------------------
def test_vllm_key_extra_parameters_and_flat_errors(gateway: Gateway, fake: FakeVendors) -> None:
    client = sdk(gateway)
    client.chat.completions.create(model="qwen", messages=MESSAGES, extra_body={"top_k": 20})
    entry = fake.recorder.last()
    assert entry["headers"]["authorization"] == f"Bearer {VLLM_KEY}"
    assert entry["json"]["top_k"] == 20 and entry["json"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="qwen", prompt="a", suffix="b")
    assert refused.value.param == "suffix"
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="vllm-broken", messages=MESSAGES)
    assert err.value.message.endswith("engine died") and err.value.type == "InternalServerError"
