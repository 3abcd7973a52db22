"""Speech-to-text for audio uploads.

With `HEADWATER_TRANSCRIPTION_MODEL` set ("<provider>/<model>", an
OpenAI-compatible `/v1/audio/transcriptions` provider of the workspace) the
audio goes there as it came. Otherwise it is transcribed offline by
pocketsphinx with the US English model its PyPI wheel ships: adequate for
short, clear commands and questions, not for dictation. Offline decoding reads
WAV (any sample rate, 8/16/32-bit PCM, mono or stereo) with the standard
library, and FLAC/OGG when the optional `soundfile` package is installed;
other formats (webm/opus from browsers) need a transcription provider.
"""

from __future__ import annotations

import asyncio
import io
import threading
import wave
from typing import TYPE_CHECKING

import numpy as np
import openai

from headwater.errors import InvalidInput, UnsupportedMediaType
from headwater.providers.openai_compat import NO_KEY_PLACEHOLDER

if TYPE_CHECKING:
    from headwater.runtime import Runtime

TARGET_RATE = 16_000
MAX_SECONDS = 300


async def transcribe(runtime: "Runtime", workspace_id: str, data: bytes, mime: str, file_name: str | None) -> str:
    model = runtime.settings.transcription_model
    if model:
        return await _transcribe_remote(runtime, workspace_id, model, data, mime, file_name)
    samples = await asyncio.to_thread(decode_to_pcm16, data, mime)
    return await asyncio.to_thread(_OFFLINE.transcribe, samples)


async def _transcribe_remote(
    runtime: "Runtime", workspace_id: str, model: str, data: bytes, mime: str, file_name: str | None
) -> str:
    from headwater.knowledge.embeddings import map_openai_error

    async with runtime.sessionmaker() as db:
        config, model_name = await runtime.provider_service(db).resolve_config(workspace_id, model)
    if config.type != "openai":
        raise InvalidInput(f"transcription provider '{config.name}' must be an openai-compatible one")
    client = openai.AsyncOpenAI(
        base_url=config.base_url, api_key=config.api_key or NO_KEY_PLACEHOLDER,
        timeout=runtime.settings.provider_timeout_seconds, max_retries=runtime.settings.provider_max_retries,
    )
    try:
        result = await client.audio.transcriptions.create(
            model=model_name, file=(file_name or "audio", data, mime or "application/octet-stream")
        )
    except openai.OpenAIError as exc:
        raise map_openai_error(exc, config.name, config.api_key) from None
    finally:
        await client.close()
    return (getattr(result, "text", None) or "").strip()


def decode_to_pcm16(data: bytes, mime: str = "") -> np.ndarray:
    """Audio bytes → mono 16 kHz int16 samples."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        samples, rate = _read_wav(data)
    elif data[:4] in (b"fLaC", b"OggS"):
        samples, rate = _read_with_soundfile(data)
    else:
        raise InvalidInput(  # 422 like every unusable chat upload
            f"offline speech-to-text reads WAV (and FLAC/OGG with soundfile), not {mime or 'this audio'}; "
            "set HEADWATER_TRANSCRIPTION_MODEL to use a transcription provider"
        )
    if samples.size / max(rate, 1) > MAX_SECONDS:
        raise InvalidInput(f"audio longer than {MAX_SECONDS} s is not transcribed offline")
    return _to_int16(_resample(samples, rate, TARGET_RATE))


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            frames = reader.readframes(min(reader.getnframes(), rate * (MAX_SECONDS + 1)))
    except (wave.Error, EOFError) as exc:
        raise InvalidInput(f"the WAV file cannot be read ({exc})") from None
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}.get(width)
    if dtype is None or channels < 1 or rate < 1000:
        raise UnsupportedMediaType("WAV files must be 8, 16 or 32-bit PCM")
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (width * channels)], dtype=dtype).astype(np.float64)
    if width == 1:
        samples = (samples - 128.0) / 128.0
    else:
        samples /= float(2 ** (8 * width - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


def _read_with_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError:
        raise UnsupportedMediaType("FLAC/OGG audio needs the optional 'soundfile' package; send WAV") from None
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile's errors are the uploader's 4xx
        raise InvalidInput(f"the audio file cannot be read ({exc.__class__.__name__})") from None
    return samples.mean(axis=1), rate


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (no aliasing when downsampling)."""
    if rate == target or samples.size == 0:
        return samples
    count = int(round(samples.size * target / rate))
    spectrum = np.fft.rfft(samples)
    return np.fft.irfft(spectrum[: count // 2 + 1], count) * (count / samples.size)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples * (0.9 / peak)  # normalise quiet recordings; the decoder likes a healthy level
    return np.clip(samples * 32767.0, -32768, 32767).astype(np.int16)


class _OfflineRecogniser:
    """One pocketsphinx decoder per process, loaded on first use, used by one thread at a time."""

    def __init__(self) -> None:
        self._decoder = None
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray) -> str:
        with self._lock:
            if self._decoder is None:
                try:
                    from pocketsphinx import Decoder
                except ImportError:
                    raise InvalidInput(
                        "speech-to-text is not available: install pocketsphinx or set HEADWATER_TRANSCRIPTION_MODEL"
                    ) from None
                self._decoder = Decoder(samprate=TARGET_RATE, loglevel="FATAL")
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(samples.tobytes(), full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
        return hypothesis.hypstr.strip() if hypothesis is not None else ""


_OFFLINE = _OfflineRecogniser()
