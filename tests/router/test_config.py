"""Config loading: `${VAR}` expansion, problems reported with their path, disabled providers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from router.config import ConfigError, load_config, parse_config
from router.routing import RouteError, RoutingTable

ROOT = Path(__file__).resolve().parents[2]
DEMO = {"demo": {"type": "mock", "models": ["echo", "lorem"]}}


def problems(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# -- ${VAR} expansion -----------------------------------------------------------------------------
def test_var_and_default_expansion_from_the_given_environ() -> None:
    raw = {
        "server": {"host": "${HOST}", "port": "${PORT:-9001}"},
        "providers": {
            "openai": {"keys": [{"value": "${OPENAI_API_KEY}"}, {"value": "sk-${SUFFIX:-none}-${SUFFIX}"}],
                       "base_url": "${SCHEME:-https}://${API_HOST:-api.openai.com}/v1"},
            **DEMO,
        },
    }
    loaded = parse_config(raw, {"HOST": "0.0.0.0", "OPENAI_API_KEY": "sk-real", "SUFFIX": "x",
                                "API_HOST": "proxy.internal"})
    config = loaded.config
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9001
    openai = config.providers["openai"]
    assert [k.value for k in openai.keys] == ["sk-real", "sk-x-x"]
    assert openai.base_url == "https://proxy.internal/v1"
    assert loaded.warnings == []


def test_environ_replaces_the_default_and_empty_means_default() -> None:
    raw = {"server": {"port": "${PORT:-9001}"}}
    assert parse_config(raw, {"PORT": "7000"}).config.server.port == 7000
    assert parse_config(raw, {"PORT": ""}).config.server.port == 9001


def test_expansion_never_touches_keys_and_reads_only_the_given_environ(monkeypatch) -> None:
    monkeypatch.setenv("LEAKED_FROM_PROCESS_ENV", "sk-should-not-appear")
    raw = {"providers": {**DEMO, "openai": {"keys": [{"value": "${LEAKED_FROM_PROCESS_ENV}"}]}},
           "models": {"${NAME}": "demo/echo"}}
    loaded = parse_config(raw, {"NAME": "renamed"})
    assert "${NAME}" in loaded.config.models
    assert "openai" in loaded.disabled


def test_unset_variable_without_default_is_empty() -> None:
    loaded = parse_config({"server": {"host": "a${NOPE}b"}}, {})
    assert loaded.config.server.host == "ab"


# -- problems with their path ---------------------------------------------------------------------
def test_unknown_keys_and_wrong_types_each_on_one_line_with_the_path() -> None:
    raw = {
        "server": {"port": "eighty", "workerz": 2},
        "providers": {"openai": {"type": "openai", "keys": [{"value": 5}, {"value": "sk", "wieght": 2}],
                                 "max_retries": [1]}},
        "models": {"fast": {"targets": [{"model": "openai/gpt-4o-mini", "weight": "heavy"}]}},
        "extra_section": {},
    }
    found = problems(raw)
    assert len(found) == 7
    by_path = {line.partition(": ")[0]: line.partition(": ")[2] for line in found}
    assert set(by_path) == {
        "server.port", "server.workerz", "providers.openai.keys[0].value", "providers.openai.keys[1].wieght",
        "providers.openai.max_retries", "models.fast.targets[0].weight", "extra_section"}
    assert by_path["server.workerz"] == "unknown key"
    assert by_path["providers.openai.keys[1].wieght"] == "unknown key"
    assert by_path["extra_section"] == "unknown key"
    assert "string" in by_path["providers.openai.keys[0].value"]
    assert "integer" in by_path["server.port"]
    assert all("\n" not in line for line in found)


def test_missing_required_key_and_out_of_range() -> None:
    found = problems({"providers": {"openai": {"keys": [{"weight": 1}], "timeouts": {"connect_s": 0}}},
                      "server": {"port": 70000}})
    assert "providers.openai.keys[0].value: required key is missing" in found
    assert any(line.startswith("providers.openai.timeouts.connect_s: ") for line in found)
    assert any(line.startswith("server.port: ") for line in found)


def test_root_must_be_a_mapping() -> None:
    assert problems(["providers"]) == ["<root>: the config must be a mapping"]


def test_unknown_provider_type() -> None:
    found = problems({"providers": {"main": {"type": "openia"}, "vertexx": {}}})
    assert len(found) == 2
    assert found[0].startswith("providers.main.type: unknown provider type 'openia' (known: ")
    assert "openai" in found[0] and "mock" in found[0]
    assert found[1].startswith("providers.vertexx: unknown provider type 'vertexx'")


def test_provider_name_is_its_type_when_type_is_absent() -> None:
    loaded = parse_config({"providers": {"groq": {"keys": [{"value": "gsk"}]}, **DEMO}}, {})
    assert loaded.config.providers["groq"].type is None
    table = RoutingTable(loaded)
    assert table.runtimes["groq"].provider.base_url == "https://api.groq.com/openai/v1"


def test_alias_referencing_an_unknown_provider() -> None:
    found = problems({"providers": DEMO, "models": {
        "fast": {"targets": [{"model": "demo/echo"}, {"model": "openai/gpt-4o-mini"}],
                 "fallbacks": ["anthropic/claude-haiku-4-5", "nosuchalias", "demo/lorem"]},
        "short": "ghost/model"}})
    assert found == [
        "models.fast.targets[1].model: 'openai/gpt-4o-mini' is not 'provider/model' with a configured provider",
        "models.fast.fallbacks[0]: 'anthropic/claude-haiku-4-5' is not 'provider/model' with a configured "
        "provider or an alias",
        "models.fast.fallbacks[1]: 'nosuchalias' is not 'provider/model' with a configured provider or an alias",
        "models.short.targets[0].model: 'ghost/model' is not 'provider/model' with a configured provider",
    ]


def test_mcp_servers_and_the_agents_naming_them() -> None:
    for servers, expected in [
            ({"both": {"url": "http://x/mcp", "command": "srv"}}, "mcp.servers.both: Value error, give exactly one"),
            ({"neither": {}}, "mcp.servers.neither: Value error, give exactly one"),
            ({"bad-name": {"url": "http://x/mcp"}}, "mcp.servers: Value error, server name 'bad-name'"),
            ({"stdio": {"command": "srv", "headers": {"a": "b"}}}, "mcp.servers.stdio: Value error, 'headers' are"),
            ({"ftp": {"url": "ftp://x"}}, "mcp.servers.ftp.url: Value error, must start with http")]:
        found = problems({"providers": DEMO, "mcp": {"servers": servers}})
        assert len(found) == 1 and found[0].startswith(expected), found
    ok = {"providers": DEMO, "mcp": {"servers": {"docs": {"url": "http://x/mcp"}}}}
    loaded = parse_config({**ok, "agents": {"a": {"model": "demo/echo", "tools": ["mcp:docs", "calculator"]}}}, {})
    assert loaded.config.agents["a"].tools == ["mcp:docs", "calculator"]
    [ghost] = problems({**ok, "agents": {"a": {"model": "demo/echo", "tools": ["mcp:ghost"]}}})
    assert "agents.a.tools: 'mcp:ghost' names no server of mcp.servers" in ghost
    [typo] = problems({**ok, "agents": {"a": {"model": "demo/echo", "tools": ["mcp_docs"]}}})
    assert typo.startswith("agents.a.tools: ") and "'mcp:<server>'" in typo


def test_azure_without_base_url() -> None:
    assert problems({"providers": {"az": {"type": "azure", "keys": [{"value": "k"}]}}}) == [
        "providers.az.base_url: required for type 'azure'"]
    loaded = parse_config({"providers": {"az": {"type": "azure", "base_url": "https://acme.openai.azure.com",
                                                "keys": [{"value": "k"}]}}}, {})
    assert loaded.config.providers["az"].base_url == "https://acme.openai.azure.com"


def test_base_url_must_be_http() -> None:
    found = problems({"providers": {"local": {"type": "openai", "base_url": "localhost:11434"}}})
    assert len(found) == 1 and found[0].startswith("providers.local.base_url: ")


# -- disabled providers ---------------------------------------------------------------------------
def test_provider_with_all_keys_empty_is_disabled_with_one_warning_and_its_targets_skipped() -> None:
    raw = {
        "providers": {"openai": {"keys": [{"value": "${OPENAI_API_KEY}"}, {"value": "  "}]}, **DEMO},
        "models": {"fast": {"targets": [{"model": "openai/gpt-4o-mini", "weight": 3}, {"model": "demo/echo"}],
                            "fallbacks": ["openai/gpt-4o"]},
                   "only-openai": "openai/gpt-4o"},
    }
    loaded = parse_config(raw, {})
    assert loaded.disabled == frozenset({"openai"})
    assert loaded.warnings == ["providers.openai: every key is empty; provider disabled"]
    table = RoutingTable(loaded)
    assert "openai" not in table.runtimes
    assert [t.label for t in table.aliases["fast"].targets] == ["demo/echo"]
    for _ in range(20):  # weights never bring a disabled target back
        assert [t.label for t in table.plan("fast").targets] == ["demo/echo"]
    with pytest.raises(RouteError) as info:
        table.plan("only-openai")
    assert info.value.status == 503 and info.value.code == "no_deployment_available"
    with pytest.raises(RouteError) as info:
        table.plan("openai/gpt-4o")
    assert info.value.code == "provider_disabled"


def test_some_empty_keys_are_dropped_with_a_warning() -> None:
    loaded = parse_config({"providers": {"openai": {"keys": [{"value": "${A}"}, {"value": "sk-b"}]}}}, {})
    assert loaded.disabled == frozenset()
    assert [k.value for k in loaded.config.providers["openai"].keys] == ["sk-b"]
    assert loaded.warnings == ["providers.openai.keys: 1 empty key(s) ignored"]


def test_provider_without_keys_is_not_disabled() -> None:
    loaded = parse_config({"providers": {"local": {"type": "ollama"}}}, {})
    assert loaded.disabled == frozenset() and loaded.warnings == []


# -- aliases --------------------------------------------------------------------------------------
def test_alias_shorthand() -> None:
    loaded = parse_config({"providers": {"openai": {"keys": [{"value": "sk"}]}},
                           "models": {"fast": "openai/gpt-4o-mini"}}, {})
    alias = loaded.config.models["fast"]
    assert [(t.model, t.weight) for t in alias.targets] == [("openai/gpt-4o-mini", 1.0)]
    assert alias.fallbacks == []
    assert [t.label for t in RoutingTable(loaded).plan("fast").targets] == ["openai/gpt-4o-mini"]


def test_alias_names_cannot_look_like_provider_models_or_agents() -> None:
    found = problems({"providers": DEMO, "models": {"a/b": "demo/echo", "agent:x": "demo/echo"}})
    assert found == ["models.a/b: an alias cannot contain '/' or start with 'agent:'",
                     "models.agent:x: an alias cannot contain '/' or start with 'agent:'"]


def test_provider_options_checked_by_the_translator() -> None:
    found = problems({"providers": {"demo": {"type": "mock", "options": {"latency": 5}}}})
    assert len(found) == 1 and found[0].startswith("providers.demo.options.latency: unknown mock option")


def test_alias_with_no_targets() -> None:
    found = problems({"providers": DEMO, "models": {"fast": {"targets": []}}})
    assert len(found) == 1 and found[0].startswith("models.fast.targets: ")


# -- files ----------------------------------------------------------------------------------------
def _example_key_vars() -> dict[str, list[str]]:
    """provider -> the `${VAR}` names its keys are made of, read from the example file itself."""
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    return {name: [m for k in spec.get("keys") or () for m in re.findall(r"\$\{(\w+)\}", str(k["value"]))]
            for name, spec in raw["providers"].items()}


def test_example_config_loads_cleanly_with_an_empty_environment() -> None:
    loaded = load_config(ROOT / "config.example.yaml", environ={})
    assert loaded.source.endswith("config.example.yaml")
    assert loaded.config.server.port == 8080
    keyed = {name for name, names in _example_key_vars().items() if names}
    assert keyed and "demo" not in keyed
    assert loaded.disabled == frozenset(keyed)
    redis_off = "redis.url: empty; running without Redis (cache, accounting and limits in process)"
    assert sorted(loaded.warnings) == sorted([f"providers.{name}: every key is empty; provider disabled"
                                              for name in keyed] + [redis_off])
    assert loaded.config.redis is None
    table = RoutingTable(loaded)
    assert set(table.runtimes) == set(loaded.config.providers) - keyed
    assert [t.label for t in table.plan("demo").targets] == ["demo/echo"]
    fast = [t.label for t in table.plan("fast").targets]
    assert fast[-1] == "demo/echo"
    assert not any(label.partition("/")[0] in keyed for label in fast)


def test_example_config_with_keys_set() -> None:
    environ = {var: "secret-value" for names in _example_key_vars().values() for var in names}
    loaded = load_config(ROOT / "config.example.yaml", environ={
        **environ, "SWITCHBOARD_PORT": "9999", "SWITCHBOARD_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert loaded.warnings == [] and loaded.disabled == frozenset()
    assert loaded.config.redis is not None and loaded.config.redis.url == "redis://127.0.0.1:6379/0"
    assert loaded.config.server.port == 9999


def test_load_config_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml", environ={})
    assert len(info.value.problems) == 1 and "missing.yaml: cannot read config" in info.value.problems[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, environ={})
    assert info.value.problems == [f"{bad}: invalid YAML: while parsing a flow sequence: expected ',' or ']', "
                                   f"but got '<stream end>' (line 2, column 1)"]  # one line, not PyYAML's five
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00providers")
    with pytest.raises(ConfigError) as info:  # was an uncaught UnicodeDecodeError
        load_config(binary, environ={})
    assert info.value.problems == [f"{binary}: cannot read config: not UTF-8 text (byte 0)"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_config(empty, environ={}).config.providers == {}
