"""The OpenAI Agents SDK (`openai-agents`) through the Responses face, answered by Anthropic.

An Agent with a `function_tool` runs with `Runner.run` and `Runner.run_streamed` against the router
(the SDK's default client pointed at it, tracing off). The model name is an alias for a fake Anthropic
deployment, so the SDK's Responses traffic is translated to Messages and back; the fake validates
every request with the anthropic SDK's types, including the tool loop the SDK replays.
"""

from __future__ import annotations

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool, set_tracing_disabled
from fakes.anthropic_upstream import Message, text, tool_use

KEY = "sk-agents-sdk-test"


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 degrees in {city}."


@pytest.fixture
async def model(anthropic, make_router):
    set_tracing_disabled(True)
    url = await make_router({"providers": {"claude": anthropic.provider("claude")},
                             "models": {"assistant": "claude/claude-haiku-4-5"},
                             "auth": {"keys": [{"name": "agents", "key": KEY}]}})
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    yield OpenAIResponsesModel(model="assistant", openai_client=client)
    await client.close()


def script(anthropic) -> None:
    anthropic.queue("claude", Message(content=[text("Let me check."), tool_use("get_weather", {"city": "Paris"})]),
                    Message(content=[text("It is sunny and 21 degrees in Paris.")]))


def check_tool_loop(anthropic) -> None:
    first, second = anthropic.bodies("claude")
    assert [t["name"] for t in first["tools"]] == ["get_weather"]
    turns = second["messages"]
    assert [m["role"] for m in turns] == ["user", "assistant", "user"]
    used = [b for b in turns[1]["content"] if b["type"] == "tool_use"]
    result = turns[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == used[0]["id"]
    assert "Sunny and 21 degrees in Paris." in str(result["content"])


async def test_runner_run(anthropic, model) -> None:
    script(anthropic)
    agent = Agent(name="Weather", instructions="Answer with the tool.", tools=[get_weather], model=model)
    result = await Runner.run(agent, "Weather in Paris?", run_config=RunConfig(tracing_disabled=True))
    assert result.final_output == "It is sunny and 21 degrees in Paris."
    check_tool_loop(anthropic)
    assert "Answer with the tool." in str(anthropic.bodies("claude")[0]["system"])


async def test_runner_run_streamed(anthropic, model) -> None:
    script(anthropic)
    agent = Agent(name="Weather", instructions="Answer with the tool.", tools=[get_weather], model=model)
    result = Runner.run_streamed(agent, "Weather in Paris?", run_config=RunConfig(tracing_disabled=True))
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert result.final_output == "It is sunny and 21 degrees in Paris."
    check_tool_loop(anthropic)
