"""One Settings object, read from HEADWATER_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEADWATER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Where the SQLite file, model and keys live.")
    database_url: str | None = Field(default=None, description="Default: a SQLite file in data_dir.")
    host: str = "127.0.0.1"
    port: int = 8000

    admin_key: SecretStr | None = None
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    # Encrypts provider secrets at rest; generated into data_dir when unset.
    secret_key: SecretStr | None = None

    rate_limit_per_minute: int = 120
    # Studio (web page) sign-in: how long a session cookie lasts, and sign-in attempts per client per minute.
    studio_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    studio_sign_in_per_minute: int = 10
    max_body_bytes: int = 10 * 1024 * 1024
    # JSON bodies beyond these shapes are refused before any route parses them (api.middleware.InputGuard).
    max_json_depth: int = 64
    max_json_items: int = 50_000
    max_json_keys: int = 1_000

    local_model_path: Path | None = Field(default=None, description="A GGUF file; default: the packaged Gemma 3 270M.")
    local_model_threads: int | None = None
    local_model_context: int = 2048  # per request
    # Requests the embedded model decodes at once (continuous batching); more wait in line.
    local_model_slots: int = Field(default=2, ge=1, le=64)
    # The package's deterministic fake provider (`fake/...` models), for tests and demos.
    enable_fake_provider: bool = False

    # Background jobs (async runs, ingestion) run at most this many at once per process.
    background_concurrency: int = 4
    # Scale-out: with a Redis URL, the event bus, run control and rate limits live in Redis and
    # background jobs go to Celery workers (`headwater worker`) through it.
    redis_url: str | None = None
    # Celery on Redis: a job message taken by a worker that died comes back to the queue after this
    # long. Keep it above the longest job: a message still unacknowledged then is delivered again even
    # though its worker is alive (the run lease keeper brings back a dead worker's runs much sooner).
    celery_visibility_timeout_seconds: float = 7200.0
    # A process renews the lease of each run it executes every `run_lease_seconds / 3`; a run whose
    # lease ran out has lost its executor: it is resumed (background) or ends `interrupted`.
    run_lease_seconds: float = 15.0

    provider_timeout_seconds: float = 60.0
    provider_max_retries: int = 2

    # Speech-to-text for audio uploads: "<provider>/<model>" of an OpenAI-compatible
    # /v1/audio/transcriptions provider (e.g. "openai/whisper-1"); unset = offline pocketsphinx (English).
    transcription_model: str | None = None

    # Flow engine: the `code` node runs only when enabled; default time limits per node and per run segment.
    code_node_enabled: bool = False
    flow_node_timeout_seconds: float = 600.0
    flow_run_timeout_seconds: float = 3600.0
    # User-given URLs (http_request node, URL ingestion) may reach private addresses: intranet setups only.
    egress_allow_private: bool = False

    # Observability: logs on stderr as JSON lines or text, one line per request; traces of runs over
    # OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318) when set, none otherwise.
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    log_requests: bool = True
    otel_endpoint: str | None = None
    # Idle SSE streams get a `: ping` comment this often (CONTRACTS: at most 15 s).
    sse_ping_seconds: float = Field(default=15.0, gt=0, le=15.0)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'headwater.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
