"""The Anthropic Messages face (`/v1/messages`, `/v1/messages/count_tokens`)."""

from .count_tokens import count_tokens_route
from .face import MessagesFace

__all__ = ["MessagesFace", "count_tokens_route"]
