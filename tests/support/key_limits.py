"""A key's limits as the admin API reports them, once every reservation is settled.

Settling runs just after each response, so a test that checks spend polls until nothing is
reserved (and fails after `timeout_s`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def settled_limits(raw: Any, url: str, name: str, admin_token: str = "admin-token",
                         timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await raw.request("GET", f"{url}/admin/keys/{name}", headers={"Authorization": f"Bearer {admin_token}"})
        assert resp.status == 200, resp.body
        limits = resp.json()["limits"]
        if not limits["budget_reserved_usd"]:
            return limits
        assert time.monotonic() < deadline, f"reservations of {name} not settled: {limits}"
        await asyncio.sleep(0.05)
