"""Sans-I/O translators between the canonical (OpenAI) format and each vendor's wire format."""

from __future__ import annotations

from .anthropic import AnthropicProvider
from .base import (
    MESSAGES_DIALECT,
    MESSAGES_HEADERS,
    RESPONSES_DIALECT,
    Capabilities,
    HttpRequest,
    LocalReply,
    Provider,
    ProviderSettings,
    StreamTranslator,
)
from .bedrock import BedrockProvider
from .cohere import CohereProvider
from .errors import ErrorKind, UpstreamError
from .gemini import GeminiProvider
from .mock import MockProvider
from .openai import PRESETS, AzureOpenAIProvider, OpenAIProvider

# Wire format name -> translator class. A config `type` may also be any OpenAI-compatible preset.
PROVIDER_TYPES: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    **dict.fromkeys(PRESETS, OpenAIProvider),
    "azure": AzureOpenAIProvider,
    "mock": MockProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
    "cohere": CohereProvider,
}


def register(type_name: str, cls: type[Provider]) -> None:
    PROVIDER_TYPES[type_name] = cls


def create_provider(settings: ProviderSettings) -> Provider:
    """Build the translator for one configured provider."""
    try:
        cls = PROVIDER_TYPES[settings.type]
    except KeyError:
        raise ValueError(f"unknown provider type '{settings.type}'") from None
    return cls(settings)


__all__ = [
    "MESSAGES_DIALECT",
    "MESSAGES_HEADERS",
    "PROVIDER_TYPES",
    "RESPONSES_DIALECT",
    "Capabilities",
    "ErrorKind",
    "HttpRequest",
    "LocalReply",
    "Provider",
    "ProviderSettings",
    "StreamTranslator",
    "UpstreamError",
    "create_provider",
    "register",
]
