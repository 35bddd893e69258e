"""The HTTP edge against hostile clients: a real `switchboard serve` process and raw sockets.

Requests aiohttp cannot parse get OpenAI-shaped JSON errors with the right status and one log line
without the offending bytes; slow and stalled clients are cut off at the configured deadlines; a
body must be declared JSON. After every one of them the server still answers, and its whole log
holds no traceback and no key.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import orjson
import pytest
import yaml
from support.serve_process import clean_env, kill_all, request, start_serve, wait_for

CLIENT_KEY = "sk-client-edge-0123456789abcdef"
HEADERS_S, BODY_S, IDLE_S = 1.0, 1.0, 3.0
CHAT = {"model": "demo/echo", "messages": [{"role": "user", "content": "hello"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One router process (one worker) with short client deadlines; yields (port, log path)."""
    tmp = tmp_path_factory.mktemp("edge")
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"timeouts": {"headers_s": HEADERS_S, "body_s": BODY_S, "idle_s": IDLE_S}},
        "providers": {"demo": {"type": "mock"}},
        "auth": {"keys": [{"name": "edge", "key": CLIENT_KEY}]},
    }))
    port = _free_port()
    log_path = tmp / "router.log"
    with open(log_path, "wb") as log:
        proc = start_serve(config, port, clean_env(), log, subprocess.STDOUT, workers=1)
        try:
            wait_for(lambda: request(port, "GET", "/healthz")[0] == 200, 30, "the router to start",
                     ignore=(OSError,))
            yield port, log_path
        finally:
            kill_all(proc, set(), 10)


def exchange(port: int, raw: bytes, *, read_s: float = 5.0) -> bytes:
    """Send `raw` on a new connection; read one whole response (or until closed, or `read_s` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_s) as sock:
        sock.sendall(raw)
        received = b""
        deadline = time.monotonic() + read_s
        while time.monotonic() < deadline and not _complete(received):
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
        return received


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def parse(response: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, orjson.loads(body) if body else {}


def assert_json_error(response: bytes, status: int) -> dict:
    got, headers, body = parse(response)
    assert got == status, response[:300]
    assert headers["content-type"].startswith("application/json")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert CLIENT_KEY.encode() not in response
    return body["error"]


def post(path: str, body: bytes, *, content_type: str | None = "application/json", extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\n"
    if content_type is not None:
        head += f"content-type: {content_type}\r\n"
    return (head + extra + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def assert_still_serving(port: int) -> None:
    assert request(port, "GET", "/healthz")[0] == 200
    status, body = _chat(port)
    assert status == 200, body


def _chat(port: int) -> tuple[int, bytes]:
    response = exchange(port, post("/v1/chat/completions", orjson.dumps(CHAT)))
    status, _, body = parse(response)
    return status, orjson.dumps(body)


# -- requests aiohttp cannot parse ------------------------------------------------------------------
def test_an_oversized_authorization_header_is_431_without_echo(server) -> None:
    port, _ = server
    huge = "Bearer " + CLIENT_KEY + "x" * 9000
    raw = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {huge}\r\n\r\n".encode()
    error = assert_json_error(exchange(port, raw), 431)
    assert error["code"] == "header_too_large"
    assert_still_serving(port)


def test_too_many_headers_is_431(server) -> None:
    port, _ = server
    many = "".join(f"x-h{i}: {i}\r\n" for i in range(2000))
    raw = f"GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n".encode()
    assert assert_json_error(exchange(port, raw), 431)["code"] in ("too_many_headers", "header_too_large")
    assert_still_serving(port)


def test_an_overlong_request_line_and_garbage_are_json_errors(server) -> None:
    port, _ = server
    long_line = f"GET /{'a' * 10000} HTTP/1.1\r\nhost: x\r\n\r\n".encode()
    assert assert_json_error(exchange(port, long_line), 431)["code"] == "header_too_large"
    assert_json_error(exchange(port, b"NOT HTTP AT ALL\r\n\r\n"), 400)
    assert_still_serving(port)


def test_broken_chunked_encoding_is_400(server) -> None:
    port, _ = server
    raw = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\n"
           "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n").encode()
    error = assert_json_error(exchange(port, raw), 400)
    assert error["code"] in ("malformed_body", "malformed_request")
    assert_still_serving(port)


# -- slow and stalled clients -----------------------------------------------------------------------
def test_headers_that_never_finish_are_cut_off_at_the_header_deadline(server) -> None:
    """Slow loris: a byte at a time, never the blank line. The server answers 408 and closes."""
    port, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        received = b""
        for i in range(40):  # would trickle for 8 s
            try:
                sock.sendall(f"x-slow-{i}: y\r\n".encode())
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:  # the server closed after answering (once its lingering ended)
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received and received.rstrip().endswith(b"}"):
                break  # the answer is in: a client stops trickling then
    elapsed = time.monotonic() - started
    assert elapsed < HEADERS_S + 2.0, elapsed
    assert_json_error(received, 408)
    assert_still_serving(port)


def test_a_body_that_never_ends_is_408_at_the_body_deadline(server) -> None:
    port, _ = server
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CLIENT_KEY}\r\n"
            "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"mo\r\n").encode()
    started = time.monotonic()
    response = exchange(port, head, read_s=BODY_S + 4)
    assert time.monotonic() - started < BODY_S + 3
    assert assert_json_error(response, 408)["code"] == "request_timeout"
    assert_still_serving(port)


def test_an_idle_connection_is_closed(server) -> None:
    port, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=IDLE_S + 5) as sock:
        assert sock.recv(1) == b""  # closed by the server, nothing sent
    assert time.monotonic() - started < IDLE_S + 2


# -- bodies must be declared JSON -------------------------------------------------------------------
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"])
def test_a_body_not_declared_json_is_415_and_never_proxied(server, content_type) -> None:
    """Form, multipart and text bodies are what any web page may send cross-site without a preflight."""
    port, _ = server
    for path in ("/v1/chat/completions", "/v1/embeddings", "/agent/v1/chat/completions"):
        error = assert_json_error(exchange(port, post(path, orjson.dumps(CHAT), content_type=content_type)), 415)
        assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json",
                                          "Application/JSON"])
def test_json_media_types_are_accepted(server, content_type) -> None:
    port, _ = server
    status, _, body = parse(exchange(port, post("/v1/chat/completions", orjson.dumps(CHAT),
                                                content_type=content_type)))
    assert status == 200, body


# -- the log ----------------------------------------------------------------------------------------
def test_the_log_holds_no_traceback_and_no_key(server) -> None:
    """Runs last in this module: everything above has been thrown at the server by now."""
    port, log = server
    assert_still_serving(port)
    text = Path(log).read_text(errors="replace")
    assert "Traceback" not in text and CLIENT_KEY not in text, text[-3000:]
    assert "refused a malformed request" in text  # one concise line per refusal
