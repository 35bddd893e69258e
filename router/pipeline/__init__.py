"""One request pipeline for every face (see `pipeline.py` for a request's life in order)."""

from .answers import CallFailed, Completion, LiveStream, Replay
from .pipeline import PIPELINE, Pipeline
from .request import ModelRequest, ProxyRequest, Route

__all__ = ["PIPELINE", "CallFailed", "Completion", "LiveStream", "ModelRequest", "Pipeline", "ProxyRequest",
           "Replay", "Route"]
