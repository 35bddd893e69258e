"""The routing core: resolve a model name, then walk the attempt chain."""

from .table import ProviderRuntime, RouteError, RoutingTable, Target

__all__ = ["ProviderRuntime", "RouteError", "RoutingTable", "Target"]
