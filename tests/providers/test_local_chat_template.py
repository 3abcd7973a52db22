"""HEADWATER_LOCAL_MODEL_PATH with a file that has its own chat template: prompted through it.

No instruction-tuned GGUF file ships with a package, so the tests write one: the
packaged Gemma file with Gemma's chat template added to its header."""

from __future__ import annotations

import asyncio
import shutil
import struct
from pathlib import Path

import pytest

from headwater.config import Settings
from headwater.providers.base import ChatMessage, GenerationParams
from headwater.providers.local_gguf import CHAT_TEMPLATE_KEY, chat_template, metadata_end, read_metadata
from headwater.providers.local_llama import (
    LocalLlamaProvider,
    build_chat_prompt,
    load_local_model,
    local_model_info,
    resolve_model_path,
)
from headwater.providers.local_runtime import loaded_runtime

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, values: dict[str, object]) -> None:
    """A header-only GGUF file (no tensors) with string, integer and string-array values."""
    body = b""
    for key, value in values.items():
        body += gguf_string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + gguf_string(value)
        elif isinstance(value, int):
            body += struct.pack("<II", 4, value)
        else:
            body += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(gguf_string(v) for v in value)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(values)) + body)


def add_chat_template(source: Path, target: Path, template: str) -> None:
    """Copy a GGUF file with one more header value; tensor data moves to the next aligned offset."""
    with open(source, "rb") as file:
        head = file.read(64 * 1024 * 1024)  # the header: values and tensor infos
        values, values_end, tensors = metadata_end(head)
        offset = values_end
        for _ in range(tensors):  # name, dimension count, dimensions, type, offset
            (name_length,) = struct.unpack_from("<Q", head, offset)
            offset += 8 + name_length
            (dims,) = struct.unpack_from("<I", head, offset)
            offset += 4 + 8 * dims + 4 + 8
        alignment = values.get("general.alignment") or 32
        data_start = -(-offset // alignment) * alignment
        (count,) = struct.unpack_from("<Q", head, 16)
        header = (head[:16] + struct.pack("<Q", count + 1) + head[24:values_end]
                  + gguf_string(CHAT_TEMPLATE_KEY) + struct.pack("<I", 8) + gguf_string(template)
                  + head[values_end:offset])
        with open(target, "wb") as out:
            out.write(header + b"\0" * (-len(header) % alignment))
            file.seek(data_start)
            shutil.copyfileobj(file, out, 16 * 1024 * 1024)


def test_the_header_is_read_without_decoding_the_vocabulary(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path, {"general.architecture": "llama", "tokenizer.ggml.tokens": ["a", "b", "<eos>"],
                      "llama.block_count": 2, CHAT_TEMPLATE_KEY: "{{ messages }}"})
    assert read_metadata(path) == {"general.architecture": "llama", "tokenizer.ggml.tokens": None,
                                   "llama.block_count": 2, CHAT_TEMPLATE_KEY: "{{ messages }}"}
    assert chat_template(path) == "{{ messages }}"
    write_gguf(path, {"general.architecture": "llama", CHAT_TEMPLATE_KEY: "  "})
    assert chat_template(path) is None


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    from headwater.providers.local_gguf import NotGguf

    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a model at all, just some bytes" * 10)
    with pytest.raises(NotGguf):
        read_metadata(path)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    pytest.importorskip("xllamacpp")
    packaged = resolve_model_path(Settings(data_dir=tmp_path_factory.getbasetemp() / "headwater-local-model"))
    assert chat_template(packaged) is None  # the packaged base model has none: it gets the transcript
    target = tmp_path_factory.mktemp("chat-model") / "gemma-chat.gguf"
    add_chat_template(packaged, target, GEMMA_TEMPLATE)
    return target


@pytest.mark.local_model
def test_a_file_with_a_chat_template_is_prompted_through_it(chat_model):
    settings = Settings(data_dir=chat_model.parent, local_model_path=chat_model)
    info = asyncio.run(load_local_model(settings))
    assert info["chat_template"] is True and info["path"] == str(chat_model.resolve())
    runtime = loaded_runtime()
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!"),
                ChatMessage("user", "What is the capital of France?")]
    tokens = build_chat_prompt(runtime, messages, 64)
    assert tokens[:1] == runtime.tokenize(b"", add_bos=True) and tokens[1] != tokens[0]  # one BOS
    assert runtime.detokenize(tokens[1:]).decode() == (
        "<start_of_turn>system\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nWhat is the capital of France?"
        "<end_of_turn>\n<start_of_turn>model\n"
    )
    # The turn markers are single special tokens, not text.
    assert len(runtime.tokenize(b"<start_of_turn>", add_bos=False, special=True)) == 1


@pytest.mark.local_model
def test_a_long_chat_through_the_template_keeps_the_newest_turns(chat_model):
    settings = Settings(data_dir=chat_model.parent, local_model_path=chat_model)
    asyncio.run(load_local_model(settings))
    runtime = loaded_runtime()
    history = []
    for i in range(150):
        history += [ChatMessage("user", f"Tell me fact number {i} about the sea."),
                    ChatMessage("assistant", "The sea is large, deep and salty, and covers most of the Earth.")]
    tokens = build_chat_prompt(runtime, [ChatMessage("system", "Be nice."), *history, ChatMessage("user", "Bye?")], 256)
    assert 1500 < len(tokens) <= runtime.n_ctx() - 256
    text = runtime.detokenize(tokens[1:]).decode()
    assert text.startswith("<start_of_turn>system\nBe nice.<end_of_turn>\n")  # the system prompt stays
    assert "fact number 0 " not in text and "fact number 149 " in text
    assert text.endswith("<start_of_turn>user\nBye?<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.local_model
async def test_the_templated_model_streams_an_answer(chat_model):
    provider = LocalLlamaProvider(Settings(data_dir=chat_model.parent, local_model_path=chat_model))
    assert await provider.list_models() == ["gemma-chat"]
    completion = await provider.complete(
        "gemma-chat", [ChatMessage("user", "What is the capital of France?")], GenerationParams(max_tokens=24)
    )
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 10 and completion.usage.completion_tokens > 0
    assert local_model_info()["chat_template"] is True
