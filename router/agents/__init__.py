"""Agents: an orchestration layer over the routing core (see DESIGN.md "Agents").

Every model call of an agent run goes through the request pipeline (`router.pipeline`), so agents
inherit the key's allow-list on every hop, budgets, fallbacks, retries, caching and accounting;
nothing here calls a vendor directly.

- `registry`    - agents from config, inline agents of a request, the default `main`
- `tools/`      - built-in tools (`http_fetch`, `calculator`, `current_time`) and HTTP tools from config
- `runtime`     - the tool loop; `step` - one model call of it; `events` - what a run reports
- `sessions`    - memory/Redis session store and session-id resolution
- `limits`      - per-IP and per-key rate limits of the agent endpoints
- `service`     - per-app state, routes, the request preamble shared by both faces
- `openai_face` - `model: "agent:<id>"` on `POST /v1/chat/completions`
- `ui_face`, `ui_stream`, `ui_messages` - `POST /agent/v1/chat/completions` (Vercel AI SDK UI messages)
"""
