from __future__ import annotations

import pytest

from headwater.config import Settings
from headwater.errors import InvalidInput
from headwater.providers.anthropic import AnthropicProvider
from headwater.providers.base import ProviderConfig
from headwater.providers.fake import FakeProvider
from headwater.providers.local_llama import LocalLlamaProvider
from headwater.providers.openai_compat import OpenAICompatibleProvider
from headwater.providers.registry import ProviderPool, builtin_config, split_model_name


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("local/gemma-3-270m", ("local", "gemma-3-270m")),
        ("myollama/library/llama3:8b", ("myollama", "library/llama3:8b")),
        ("fake/slow-20", ("fake", "slow-20")),
    ],
)
def test_split_model_name_on_first_slash(full, expected):
    assert split_model_name(full) == expected


@pytest.mark.parametrize("bad", ["gpt-4o", "", "/model", "provider/"])
def test_split_model_name_rejects_names_without_provider(bad):
    with pytest.raises(InvalidInput, match="<provider>/<model>"):
        split_model_name(bad)


@pytest.fixture
async def pool(tmp_path):
    pool = ProviderPool(Settings(data_dir=tmp_path, enable_fake_provider=True))
    yield pool
    await pool.aclose()


def openai_config(**changes) -> ProviderConfig:
    fields = dict(name="ollama", type="openai", base_url="http://127.0.0.1:11434/v1", api_key="k1", models=["m"])
    return ProviderConfig(**{**fields, **changes})


async def test_same_config_reuses_the_instance(pool):
    first = pool.get(openai_config())
    assert isinstance(first, OpenAICompatibleProvider)
    assert pool.get(openai_config()) is first


@pytest.mark.parametrize(
    "change",
    [{"api_key": "k2"}, {"base_url": "http://127.0.0.1:8080/v1"}, {"models": ["m", "n"]}, {"options": {"timeout": 5}}],
)
async def test_changed_config_gets_a_fresh_client(pool, change):
    first = pool.get(openai_config())
    second = pool.get(openai_config(**change))
    assert second is not first
    assert pool.get(openai_config(**change)) is second


async def test_types(pool):
    assert isinstance(pool.get(ProviderConfig(name="c", type="anthropic", api_key="x")), AnthropicProvider)
    assert isinstance(pool.get(ProviderConfig(name="fake", type="fake")), FakeProvider)
    local = pool.get(ProviderConfig(name="local", type="local"))
    assert isinstance(local, LocalLlamaProvider)
    other_pool = ProviderPool(pool.settings)
    assert other_pool.get(ProviderConfig(name="local", type="local")) is local  # process-wide
    with pytest.raises(InvalidInput, match="unknown type"):
        pool.get(ProviderConfig(name="x", type="cohere"))


async def test_fake_needs_enabling(tmp_path):
    pool = ProviderPool(Settings(data_dir=tmp_path, enable_fake_provider=False))
    with pytest.raises(InvalidInput, match="disabled"):
        pool.get(ProviderConfig(name="fake", type="fake"))
    assert builtin_config("fake", pool.settings) is None
    assert builtin_config("local", pool.settings).type == "local"


async def test_settings_shape_the_clients(tmp_path):
    pool = ProviderPool(Settings(data_dir=tmp_path, provider_timeout_seconds=7, provider_max_retries=4))
    provider = pool.get(openai_config())
    assert provider._max_retries == 4 and provider._client.timeout == 7
    await pool.aclose()


async def test_aclose_closes_current_and_replaced_clients(pool):
    closed = []
    first = pool.get(openai_config())
    second = pool.get(openai_config(api_key="k2"))
    for provider in (first, second):
        original = provider.aclose

        async def record(provider=provider, original=original):
            closed.append(provider)
            await original()

        provider.aclose = record
    await pool.aclose()
    assert set(map(id, closed)) == {id(first), id(second)}
