"""Optional OpenTelemetry traces with the GenAI semantic conventions, exported over OTLP/HTTP.

On only when `logging.otlp_endpoint` is set and the `otel` extra is installed
(`pip install 'switchboard[otel]'`); otherwise `build_tracing` returns None and nothing here runs.
One SERVER span per proxied request, created when the request is done from the times the
`Exchange` kept (nothing is traced while the request runs), child of the caller's W3C
`traceparent` when it sends one. Spans go out in batches from the SDK's own thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from .exchange import Exchange

log = logging.getLogger("switchboard")

# provider type -> `gen_ai.provider.name` (formerly `gen_ai.system`) well-known values
_GENAI_PROVIDER = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
                   "vertex": "gcp.vertex_ai", "bedrock": "aws.bedrock", "cohere": "cohere", "groq": "groq",
                   "mistral": "mistral_ai", "deepseek": "deepseek", "xai": "x_ai", "perplexity": "perplexity"}
_OPERATION = {"chat": "chat", "embeddings": "embeddings", "agent": "invoke_agent"}


class Tracing:
    def __init__(self, endpoint: str, provider_types: dict[str, str], exporter: Any = None) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint)
        self.provider = TracerProvider(resource=Resource.create({"service.name": "switchboard"}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("switchboard")
        self._extract = propagate.extract
        self._kind = trace.SpanKind.SERVER
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR
        self._systems = {name: _GENAI_PROVIDER.get(kind, kind) for name, kind in provider_types.items()}

    def record(self, ex: Exchange, status: int, error: str | None, end: float, request: web.Request) -> None:
        if ex.route is None:
            return
        operation = _OPERATION.get(ex.route, ex.route)
        start_ns = int(ex.wall * 1e9)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "http.request.method": request.method,
            "http.route": request.match_info.route.resource.canonical,
            "http.response.status_code": status,
            "switchboard.request_id": ex.request_id,
            "switchboard.cache": ex.cache,
        }
        if ex.requested:
            attrs["gen_ai.request.model"] = ex.requested
        if ex.provider:
            system = self._systems.get(ex.provider, ex.provider)
            attrs["gen_ai.provider.name"] = system
            attrs["gen_ai.system"] = system  # the older name, still read by many backends
            attrs["switchboard.provider"] = ex.provider
        if ex.model:
            attrs["gen_ai.response.model"] = ex.model.partition("/")[2] or ex.model
            attrs["switchboard.model"] = ex.model
        if ex.recorded:
            billed = ex.billed
            attrs["gen_ai.usage.input_tokens"] = billed.prompt_tokens
            attrs["gen_ai.usage.output_tokens"] = billed.completion_tokens
            attrs["switchboard.cost_usd"] = billed.cost_usd or 0.0
        if ex.key:
            attrs["switchboard.key"] = ex.key
        attempts = ex.attempts
        if attempts:
            attrs["switchboard.attempts"] = [f"{a.model} {a.status} {a.latency_ms}ms" for a in attempts]
        if ex.first_token_at is not None:
            attrs["switchboard.time_to_first_token_ms"] = round((ex.first_token_at - ex.started) * 1000.0, 3)
        if error is not None:
            attrs["error.type"] = error
        name = f"{operation} {ex.requested}" if ex.requested else operation
        span = self.tracer.start_span(name, context=self._extract(request.headers), kind=self._kind,
                                      attributes=attrs, start_time=start_ns)
        if error is not None:
            span.set_status(self._status(self._error, error))
        span.end(end_time=start_ns + int((end - ex.started) * 1e9))

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:
            log.warning("tracing: shutdown failed", exc_info=True)


def build_tracing(endpoint: str | None, provider_types: dict[str, str], exporter: Any = None) -> Tracing | None:
    """A `Tracing` when an endpoint is configured and the SDK is installed; else None (zero cost)."""
    if not endpoint:
        return None
    try:
        return Tracing(endpoint, provider_types, exporter)
    except ImportError:
        log.warning("logging.otlp_endpoint is set but OpenTelemetry is not installed "
                    "(pip install 'switchboard[otel]'); tracing is off")
        return None
