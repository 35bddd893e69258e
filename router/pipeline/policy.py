"""Who may reach what: a key's allow-list and the deployments' capabilities, applied to a whole plan.

Tenancy holds on every hop. A virtual key's `models` globs must match every name the request
writes (its `model`, each of its `fallbacks`, the agent it runs) and every deployment
(`provider/model`) the request can reach: an alias's targets and fallbacks, the request's
fallbacks, hedged targets. A name the key may not use is a 403 naming it; a deployment it may not
use is skipped; when none is left, 403. So an alias never widens what a key reaches: a key allowed
`fast` and `openai/*` is served by fast's OpenAI targets only.

Capabilities are checked once, here, from what each provider declares: a deployment that cannot
honour a parameter of the request is skipped (or sent the request without it, when its provider
sets `options.drop_params`); when none is left, 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable

from providers.capabilities import can_drop, unsupported, unsupported_error, untuned, without, without_tuning

from ..auth import VirtualKey
from ..errors import ApiError
from ..routing.table import Plan, RoutingTable, Target


def check_names(key: VirtualKey | None, names: Iterable[tuple[str, str]]) -> None:
    """403 for the first (name, param) the key may not use."""
    if key is None or key.models is None:
        return
    for name, param in names:
        if not key.allows(name):
            raise ApiError(403, f"key '{key.name}' is not allowed to use model '{name}'", param=param,
                           code="model_not_allowed", type="permission_error")


def listable(key: VirtualKey | None, table: RoutingTable, name: str) -> bool:
    """Whether `/v1/models` shows `name` to this key: it may name it and reach one of its deployments."""
    if key is None or key.models is None:
        return True
    if not key.allows(name):
        return False
    alias = table.aliases.get(name)
    targets = alias.targets if alias is not None else [table.direct(name)]
    return any(t is not None and key.allows(t.label) for t in targets)


def reachable(key: VirtualKey | None, plan: Plan, requested: str) -> Plan:
    """The plan without the deployments the key may not use (403 when none is left)."""
    if key is None or key.models is None:
        return plan
    targets = [t for t in plan.targets if key.allows(t.label)]
    if not targets:
        raise ApiError(403, f"key '{key.name}' is not allowed to use any deployment that model '{requested}' "
                            "routes to", param="model", code="model_not_allowed", type="permission_error")
    if len(targets) == len(plan.targets):
        return plan
    return Plan(targets, plan.hedge_after_s if len(targets) > 1 else None)


def capable(plan: Plan, kind: str, body: dict, tuning: tuple[str, ...] = ()) -> tuple[Plan, dict[str, dict] | None]:
    """The deployments that can serve this request, and the stripped body of those that drop what
    they cannot honour (label -> body). 400 naming a parameter when none can. The `tuning` members (a
    face marks those that only tune the vendor's behaviour) are stripped, never refused."""
    if kind == "chat" and not tuning and all(t.runtime.honours_all for t in plan.targets):
        return plan, None  # the common case: nothing to check
    kept: list[Target] = []
    stripped: dict[str, dict] = {}
    first_refusal = None
    for target in plan.targets:
        provider = target.runtime.provider
        missing = unsupported(provider.capabilities, body, kind)
        soft = untuned(provider.capabilities, body, tuning) if tuning else []
        if not missing:
            kept.append(target)
            if soft:
                stripped[target.label] = without_tuning(body, soft)
        elif kind == "chat" and provider.drop_params and can_drop(missing):
            kept.append(target)
            stripped[target.label] = without_tuning(without(body, missing), soft)
        elif first_refusal is None:
            first_refusal = unsupported_error(target.runtime.name, missing[0], kind)
    if not kept:
        assert first_refusal is not None
        raise ApiError(400, first_refusal.message, param=first_refusal.param, code=first_refusal.code)
    if len(kept) == len(plan.targets):
        return plan, stripped or None
    return Plan(kept, plan.hedge_after_s if len(kept) > 1 else None), stripped or None
