"""The embedded llama.cpp provider: prompt building with a stand-in tokenizer
(always runs), and the real Gemma model (marked `local_model`). Several requests
at once, and the queue behind the slots: test_local_slots.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from headwater.config import Settings
from headwater.providers.base import (
    ChatMessage,
    GenerationParams,
    ImagePart,
    ProviderBadRequest,
    ProviderUnavailable,
)
from headwater.providers.local_llama import (
    DEFAULT_MODEL_NAME,
    TRANSCRIPT_EXAMPLES,
    TRANSCRIPT_INTRO,
    LocalLlamaProvider,
    build_prompt,
    load_local_model,
    local_model_info,
)
from headwater.providers.local_runtime import loaded_runtime
from headwater.providers.transcript_guard import SPEAKER_LABEL


class WordTokenizer:
    """One token per whitespace word, BOS = 0: enough to check prompt layout and truncation."""

    def __init__(self, n_ctx: int):
        self._n_ctx = n_ctx

    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        words = [hash(w) % 1000 + 1 for w in text.decode().split()]
        return [0, *words] if add_bos else words


def transcript(messages: list[ChatMessage], n_ctx: int = 1000, max_new: int = 10) -> str:
    """build_prompt's text, recovered by building it with a tokenizer that records its input."""
    seen: list[str] = []

    class Recording(WordTokenizer):
        def tokenize(self, text, add_bos=True, special=False):
            if add_bos:
                seen.append(text.decode())
            return super().tokenize(text, add_bos, special)

    build_prompt(Recording(n_ctx), messages, max_new)
    return seen[-1]


def test_prompt_is_a_plain_transcript():
    messages = [
        ChatMessage("system", "You are Bob."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "What is the capital of France?"),
    ]
    assert transcript(messages) == (
        TRANSCRIPT_INTRO + "You are Bob.\n\n" + TRANSCRIPT_EXAMPLES
        + "User: Hi\nAssistant: Hello!\nUser: What is the capital of France?\nAssistant:"
    )
    assert transcript([ChatMessage("user", "Hi")]) == TRANSCRIPT_INTRO + TRANSCRIPT_EXAMPLES + "User: Hi\nAssistant:"


def test_long_history_drops_oldest_turns_to_fit():
    history = [ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * 20) for i in range(40)]
    messages = [ChatMessage("system", "Stay kind."), *history, ChatMessage("user", "last question")]
    tokens = build_prompt(WordTokenizer(260), messages, 50)
    assert len(tokens) <= 210
    text = transcript(messages, n_ctx=260, max_new=50)
    assert text.startswith(TRANSCRIPT_INTRO + "Stay kind.\n\n") and text.endswith("User: last question\nAssistant:")
    assert "message 0 " not in text and "message 39 " in text


def test_one_huge_message_is_cut_from_the_front():
    messages = [ChatMessage("user", "blah " * 500 + "the real question")]
    tokens = build_prompt(WordTokenizer(100), messages, 20)
    assert len(tokens) == 80 and tokens[0] == 0


async def test_unknown_model_and_images_are_refused(tmp_path):
    provider = LocalLlamaProvider(Settings(data_dir=tmp_path))
    assert await provider.list_models() == [DEFAULT_MODEL_NAME]
    with pytest.raises(ProviderBadRequest) as caught:
        await anext(provider.stream_chat("llama-70b", [ChatMessage("user", "hi")], GenerationParams()))
    assert caught.value.status == 404
    with pytest.raises(ProviderBadRequest):
        messages = [ChatMessage("user", "hi", [ImagePart("https://x.test/a.png")])]
        await anext(provider.stream_chat(DEFAULT_MODEL_NAME, messages, GenerationParams()))
    assert not LocalLlamaProvider.accepts_images


# --- the real model -----------------------------------------------------------

QUESTION = [ChatMessage("user", "What is the capital of France?")]
# A base model reliably continues a list, which makes a long answer to interrupt.
LONG = [ChatMessage("user", "Please list the numbers from 1 to 100: 1, 2, 3,")]


@pytest.fixture(scope="module")
def local_provider(tmp_path_factory) -> LocalLlamaProvider:
    pytest.importorskip("xllamacpp")
    data_dir = tmp_path_factory.getbasetemp() / "headwater-local-model"  # once per session
    settings = Settings(data_dir=data_dir)
    asyncio.run(load_local_model(settings))
    return LocalLlamaProvider(settings)


@pytest.mark.local_model
async def test_real_model_answers_in_several_deltas(local_provider):
    assert local_model_info()["loaded"] is True
    deltas = [d async for d in local_provider.stream_chat(DEFAULT_MODEL_NAME, QUESTION, GenerationParams())]
    text_deltas = [d for d in deltas if d.text]
    answer = "".join(d.text for d in text_deltas)
    assert len(text_deltas) >= 2
    assert answer.strip() and answer == answer.lstrip()
    assert "User:" not in answer and "Assistant:" not in answer
    last = deltas[-1]
    assert last.finish_reason in ("stop", "length")
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0


@pytest.mark.local_model
async def test_real_model_respects_max_tokens(local_provider):
    completion = await local_provider.complete(
        DEFAULT_MODEL_NAME, LONG, GenerationParams(max_tokens=5, temperature=0.0)
    )
    assert completion.finish_reason == "length"
    assert 0 < completion.usage.completion_tokens <= 6


@pytest.mark.local_model
async def test_the_guard_ends_the_answer_where_the_model_writes_the_next_speaker(local_provider):
    # Greedy, the base model answers this one line and then starts a "Student" line of its own.
    question = [ChatMessage("user", "Write a short dialogue between a teacher and a student.")]
    completion = await local_provider.complete(DEFAULT_MODEL_NAME, question, GenerationParams(temperature=0.0))
    assert completion.text.strip() and "Student" not in completion.text
    assert not any(SPEAKER_LABEL.match(line) for line in completion.text.splitlines())
    assert completion.finish_reason == "stop" and completion.usage.completion_tokens > 0


@pytest.mark.local_model
async def test_the_next_turn_reuses_the_cached_prompt(local_provider):
    first_turn = [ChatMessage("system", "You are a geography teacher."), *QUESTION]
    answer = await local_provider.complete(DEFAULT_MODEL_NAME, first_turn, GenerationParams(temperature=0.0))
    before = local_model_info()
    second_turn = [*first_turn, ChatMessage("assistant", answer.text), ChatMessage("user", "And of Spain?")]
    await local_provider.complete(DEFAULT_MODEL_NAME, second_turn, GenerationParams(max_tokens=8, temperature=0.0))
    after = local_model_info()
    read = after["prompt_tokens"] - before["prompt_tokens"]
    cached = after["prompt_tokens_cached"] - before["prompt_tokens_cached"]
    # The second prompt is the first plus the answer and a new question: most of it comes from the cache.
    assert read > answer.usage.prompt_tokens and cached >= answer.usage.prompt_tokens * 0.7


async def seconds_until_slots_are_free(limit: float = 60) -> float:
    """How long the model stays busy: a generation that ignored the cancellation
    would hold its slot for the rest of its 400 tokens (5 s or more)."""
    started = time.perf_counter()
    while local_model_info()["busy"] and time.perf_counter() - started < limit:
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def still_answers(provider: LocalLlamaProvider) -> None:
    completion = await asyncio.wait_for(
        provider.complete(DEFAULT_MODEL_NAME, QUESTION, GenerationParams(max_tokens=20)), 60
    )
    assert completion.text.strip()


@pytest.mark.local_model
async def test_closing_mid_stream_stops_generation(local_provider):
    stream = local_provider.stream_chat(DEFAULT_MODEL_NAME, LONG, GenerationParams(max_tokens=400, temperature=0.0))
    assert (await anext(stream)).text and (await anext(stream)).text
    started = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - started < 0.1
    # One decoding step (tens of ms) frees the slot; loose bound: these 2-core machines are shared.
    assert await seconds_until_slots_are_free() < 1
    await still_answers(local_provider)


@pytest.mark.local_model
async def test_cancelling_the_consumer_task_stops_generation(local_provider):
    got_two = asyncio.Event()

    async def consume():
        count = 0
        async for _ in local_provider.stream_chat(
            DEFAULT_MODEL_NAME, LONG, GenerationParams(max_tokens=400, temperature=0.0)
        ):
            count += 1
            if count == 2:
                got_two.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_two.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await seconds_until_slots_are_free() < 1
    await still_answers(local_provider)


@pytest.mark.local_model
def test_real_tokenizer_prompt_fits_the_context(local_provider):
    # Generating from a full 2k context takes ~10s on two cores, so this checks
    # the fitted prompt with the real tokenizer and leaves generation to the tests above.
    runtime = loaded_runtime()
    history = []
    for i in range(120):
        history.append(ChatMessage("user", f"Tell me fact number {i} about the sea, please."))
        history.append(ChatMessage("assistant", "The sea is large, deep and salty, and covers most of the Earth."))
    tokens = build_prompt(runtime, [ChatMessage("system", "Be nice."), *history, *QUESTION], 256)
    assert 1500 < len(tokens) <= runtime.n_ctx() - 256
    assert tokens[:1] == runtime.tokenize(b"", add_bos=True)  # BOS, and then the text
    text = runtime.detokenize(tokens[1:]).decode()
    assert text.startswith(TRANSCRIPT_INTRO + "Be nice.\n\n") and text.endswith("User: What is the capital of France?\nAssistant:")
    assert "fact number 0 " not in text and "fact number 119 " in text


async def test_missing_model_file_is_reported(tmp_path):
    provider = LocalLlamaProvider(Settings(data_dir=tmp_path, local_model_path=tmp_path / "absent.gguf"))
    assert await provider.list_models() == ["absent"]
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.complete("absent", [ChatMessage("user", "hi")], GenerationParams())
    assert "absent.gguf" in str(caught.value) or "xllamacpp" in str(caught.value)
