"""An OTLP/HTTP trace collector on 127.0.0.1, in the test process: what a server exports, decoded."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from support.provider_mocks import ServedApp


@dataclass
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]


@dataclass
class Collected:
    spans: list[ExportedSpan] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every export as received, to grep for secrets
    stopping: bool = False
    port: int = 0

    def reset(self) -> None:
        self.spans.clear()
        self.bodies.clear()

    def of_run(self, run_id: str) -> list[ExportedSpan]:
        """The spans of the trace that holds this run's span."""
        traces = {s.trace_id for s in self.spans if s.attributes.get("headwater.run.id") == run_id}
        return [s for s in self.spans if s.trace_id in traces]


def _value(any_value) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(items) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def collector_app(collected: Collected) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request):
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        collected.bodies.append(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    collected.spans.append(ExportedSpan(
                        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(), attributes=_attributes(span.attributes),
                        status=span.status.code, resource=resource))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    return app


def serve_collector() -> tuple[ServedApp, Collected]:
    collected = Collected()
    served = ServedApp(collector_app(collected), collected).start()  # type: ignore[arg-type]
    collected.port = served.port
    return served, collected
