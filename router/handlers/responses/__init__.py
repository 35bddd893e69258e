"""The OpenAI Responses face (`/v1/responses`, and the stored responses it keeps)."""

from .routes import add_responses_routes

__all__ = ["add_responses_routes"]
