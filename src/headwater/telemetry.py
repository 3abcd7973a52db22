"""What operators see of a running Headwater: Prometheus metrics, structured logs, OpenTelemetry traces.

The code that does the work is instrumented in a few places only, each with one
line that calls into this module: requests (the `api.access` middleware), runs
(`traced_flow_run` on a run segment), nodes
(`traced_node` on the scheduler's node step), provider calls (every provider the
pool hands out is wrapped in `TracedProvider`), retries (`provider_retry`).

- Metrics live in `REGISTRY`, one per process like the process itself (counters of
  a process are what Prometheus scrapes from it); `GET /metrics` adds the store's
  counts (runs, jobs, queue depth) when it is scraped.
- Logs are one line per record on stderr, JSON or text (`HEADWATER_LOG_FORMAT`),
  with secrets masked on the way out: API keys, bearer and basic credentials,
  provider-style keys, and the configured admin key, password and secret key.
- Traces: a span per run, per node and per provider call (with token counts),
  exported over OTLP/HTTP when `HEADWATER_OTEL_ENDPOINT` is set; without it the
  tracer is OpenTelemetry's no-op one. No span carries a prompt, a reply or a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import ProcessCollector, PlatformCollector

from headwater.providers.base import ChatProvider

if TYPE_CHECKING:
    from headwater.config import Settings

# -- metrics ---------------------------------------------------------------------------------------

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter("headwater_http_requests", "HTTP requests answered, by route template and status.",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("headwater_http_request_duration_seconds",
                         "Time from a request's arrival to the end of its answer (streams: to their end).",
                         ["method", "route"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
OPEN_STREAMS = Gauge("headwater_open_streams", "Streams (SSE responses, WebSockets) open now.", ["kind"],
                     registry=REGISTRY)
for _kind in ("sse", "websocket"):
    OPEN_STREAMS.labels(_kind)
RUNS = Counter("headwater_runs", "Runs (or run segments, for resumed flows) ended in this process, by kind and status.",
               ["kind", "status"], registry=REGISTRY)
RUN_LATENCY = Histogram("headwater_run_duration_seconds", "Wall time of a run segment in this process.", ["kind"],
                        registry=REGISTRY, buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
TOKENS = Counter("headwater_tokens", "Model tokens, by provider and direction (prompt or completion).",
                 ["provider", "type"], registry=REGISTRY)
PROVIDER_CALLS = Counter("headwater_provider_calls", "Model calls, by provider and outcome.",
                         ["provider", "outcome"], registry=REGISTRY)
PROVIDER_ERRORS = Counter("headwater_provider_errors", "Model calls that failed, by provider and error type.",
                          ["provider", "error"], registry=REGISTRY)
PROVIDER_RETRIES = Counter("headwater_provider_retries", "Model calls tried again, by the reason.",
                           ["reason"], registry=REGISTRY)


def provider_retry(error: BaseException) -> None:
    """A retryable provider failure is about to be tried again (providers.retry)."""
    PROVIDER_RETRIES.labels(type(error).__name__).inc()


# -- logs ------------------------------------------------------------------------------------------

# Masked in every log line whatever the code logged: our keys, credentials in headers, vendor keys.
SECRET_PATTERNS = [
    re.compile(r"hw_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(api[_-]?key|password|secret|token|authorization)(\"?\s*[:=]\s*\"?)[^\s\",}]{4,}"),
]
_known_secrets: list[str] = []
# Fields of a record that are the caller's (`log.info(..., extra={...})`) rather than logging's own.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def mask(text: str) -> str:
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(_masked, text)
    return text


def _masked(match: re.Match) -> str:
    if match.re.groups >= 2:  # key = value: keep the name
        return f"{match.group(1)}{match.group(2)}***"
    if match.re.groups == 1:  # Bearer <token>
        return f"{match.group(1)} ***"
    return match.group(0)[:3] + "***"


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return mask(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return mask(text)


def configure_logging(settings: "Settings") -> None:
    """Root handler on stderr in the chosen format, masking secrets (once per process; later calls adjust)."""
    _known_secrets[:] = sorted({s for s in _settings_secrets(settings) if len(s) >= 6}, key=len, reverse=True)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "headwater", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.headwater = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.setLevel(settings.log_level.upper())
    # Chatty libraries stay at warnings even when Headwater logs debug lines.
    for name in ("httpx", "httpcore", "httpx2", "asyncio", "aiosqlite", "urllib3", "openai", "anthropic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _settings_secrets(settings: "Settings") -> list[str]:
    found = []
    for name in ("admin_key", "admin_password", "secret_key"):
        value = getattr(settings, name, None)
        if value is not None:
            found.append(value.get_secret_value())
    return found


# -- traces ----------------------------------------------------------------------------------------

_provider: Any = None  # the SDK's TracerProvider once configured; None: OpenTelemetry's global (no-op)


def tracer() -> trace.Tracer:
    if _provider is not None:
        return _provider.get_tracer("headwater")
    return trace.get_tracer("headwater")


def tracing_on() -> bool:
    """Whether spans go anywhere: a provider of ours, or one the embedding process set globally."""
    return _provider is not None or not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def use_tracer_provider(provider: Any) -> None:
    """Send spans to `provider` (tests use one with the SDK's in-memory exporter)."""
    global _provider
    _provider = provider


def configure_tracing(settings: "Settings", role: str) -> None:
    """OTLP/HTTP export when `otel_endpoint` is set; nothing otherwise (the SDK is not even imported)."""
    if not settings.otel_endpoint or _provider is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from headwater import __version__

    endpoint = settings.otel_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({
        "service.name": "headwater", "service.version": __version__, "headwater.role": role,
    }))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=10)))
    use_tracer_provider(provider)


def shutdown_tracing() -> None:
    """Export what is left (the end of the process)."""
    global _provider
    if _provider is not None and hasattr(_provider, "shutdown"):
        _provider.shutdown()
    _provider = None


def _set_usage(span, usage: dict[str, int] | None) -> None:
    if usage:
        span.set_attribute("gen_ai.usage.input_tokens", int(usage.get("prompt_tokens", 0)))
        span.set_attribute("gen_ai.usage.output_tokens", int(usage.get("completion_tokens", 0)))


def _end_run(span, kind: str, status: str, usage: dict[str, int] | None, started: float) -> None:
    span.set_attribute("headwater.run.status", status)
    _set_usage(span, usage)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, "run failed"))
    RUNS.labels(kind, status).inc()
    RUN_LATENCY.labels(kind).observe(time.perf_counter() - started)


def traced_flow_run(execute: Callable) -> Callable:
    """For `FlowService._execute_registered(self, loaded, state, foreground, started) -> FlowResult`."""

    @functools.wraps(execute)
    async def wrapper(service, loaded, state, *args, **kwargs):
        kind = state.kind
        started = time.perf_counter()
        if tracing_on():
            attributes = {"headwater.run.id": state.run_id, "headwater.app.id": state.app_id,
                          "headwater.app.kind": kind, "headwater.workspace.id": state.workspace_id,
                          "headwater.run.resumed": loaded.last_seq > 0}
            spanned = tracer().start_as_current_span(f"run {kind}", attributes=attributes, record_exception=False,
                                                     set_status_on_exception=False)
        else:  # the metrics all the same, without making a span nobody receives
            spanned = contextlib.nullcontext(trace.INVALID_SPAN)
        with spanned as span:
            try:
                result = await execute(service, loaded, state, *args, **kwargs)
            except asyncio.CancelledError:
                _end_run(span, kind, "cancelled", None, started)
                raise
            except BaseException:
                _end_run(span, kind, "failed", None, started)
                raise
            _end_run(span, kind, result.status, result.usage, started)
            return result

    return wrapper


def traced_node(run_node: Callable) -> Callable:
    """For `GraphScheduler._run_node(self, nid) -> NodeResult`: a `node` span, child of its run's."""

    @functools.wraps(run_node)
    async def wrapper(scheduler, nid, *args, **kwargs):
        if not tracing_on():  # no span to make: every node of every run passes here
            return await run_node(scheduler, nid, *args, **kwargs)
        node_type = scheduler.graph.nodes[nid].type_name
        attributes = {"headwater.node.id": nid, "headwater.node.type": node_type,
                      "headwater.run.id": scheduler.run.run_id}
        if scheduler.parent is not None:
            attributes["headwater.node.parent"], attributes["headwater.node.index"] = scheduler.parent
        with tracer().start_as_current_span(f"node {node_type}", attributes=attributes,
                                            record_exception=False, set_status_on_exception=False) as span:
            try:
                result = await run_node(scheduler, nid, *args, **kwargs)
            except asyncio.CancelledError:
                span.set_attribute("headwater.node.status", "cancelled")
                raise
            except BaseException as exc:
                span.set_attribute("headwater.node.status", "failed")
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            span.set_attribute("headwater.node.status", "waiting" if result.pause_prompt is not None else "succeeded")
            _set_usage(span, result.usage.as_dict() if result.usage else None)
            return result

    return wrapper


class TracedProvider:
    """A provider with a span, token counts and error counts around every model call.

    Everything else (capabilities such as `accepts_images` and `supports_tools`, listing
    models, closing) is the wrapped provider's own: only the calls are intercepted.
    """

    def __init__(self, inner: ChatProvider, name: str, kind: str):
        self.inner, self.name, self.kind = inner, name, kind

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def stream_chat(self, model, messages, params):
        return _traced_call(self.inner.stream_chat(model, messages, params), self, model, streamed=True)

    def reply_deltas(self, model, messages, params, *, streamed: bool):
        return _traced_call(self.inner.reply_deltas(model, messages, params, streamed=streamed), self, model,
                            streamed=streamed)

    async def complete(self, model, messages, params):
        return await ChatProvider.complete(self, model, messages, params)  # type: ignore[arg-type]


def traced_provider(provider: ChatProvider, name: str, kind: str) -> ChatProvider:  # type: ignore[return]
    """What `ProviderService.resolve` hands to callers: the provider, traced (one wrapper per provider)."""
    if isinstance(provider, TracedProvider):
        return provider
    wrapper = getattr(provider, "_headwater_traced", None)
    if wrapper is None or wrapper.name != name:
        wrapper = TracedProvider(provider, name, kind)
        provider._headwater_traced = wrapper  # type: ignore[attr-defined]
    return wrapper


async def _traced_call(deltas: AsyncIterator, provider: TracedProvider, model: str, streamed: bool) -> AsyncIterator:
    name, kind = provider.name, provider.kind
    # A leaf span that is never made current: the caller's context is not touched across yields.
    span = tracer().start_span(f"chat {model}", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.system": kind, "gen_ai.request.model": model,
        "headwater.provider": name, "headwater.streamed": streamed}) if tracing_on() else trace.INVALID_SPAN
    usage = None
    outcome = "ok"
    try:
        async for delta in deltas:
            if delta.usage is not None:
                usage = delta.usage
            if delta.finish_reason:
                span.set_attribute("gen_ai.response.finish_reasons", [delta.finish_reason])
            yield delta
    except (asyncio.CancelledError, GeneratorExit):
        outcome = "cancelled"
        raise
    except BaseException as exc:
        outcome = "error"
        PROVIDER_ERRORS.labels(name, type(exc).__name__).inc()
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if (status := getattr(exc, "status", None)) is not None:
            span.set_attribute("http.response.status_code", int(status))
        raise
    finally:
        aclose = getattr(deltas, "aclose", None)
        if aclose is not None:
            await aclose()
        PROVIDER_CALLS.labels(name, outcome).inc()
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            TOKENS.labels(name, "prompt").inc(usage.prompt_tokens)
            TOKENS.labels(name, "completion").inc(usage.completion_tokens)
        span.end()
