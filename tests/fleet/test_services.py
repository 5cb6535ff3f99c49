"""The fleet's services, run for real (tests/fleet/services.py), and the deployment files in deploy/.

PostgreSQL, Redis and nginx are Debian's binaries started as plain processes on free ports; nginx runs
the documented site (deploy/nginx/tingshuo.conf) in front of small aiohttp apps standing in for
tingshuo workers. A missing binary fails these tests with the apt-get command to run, never skips them.
"""

from __future__ import annotations

import asyncio
import configparser
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions
import yaml
from aiohttp import web

from models.llama_server_process import LlamaServerParams
from server.config import ServerSection, load_config
from tests.fleet import services
from tests.fleet.services import (
    DEPLOY,
    INSTALL_HINT,
    SITE_TEMPLATE,
    MissingBinaryError,
    NginxServer,
    PostgresServer,
    RedisServer,
    ServiceError,
    find_binary,
    free_port,
    render_site,
)

TIMEOUT = aiohttp.ClientTimeout(total=15)


def test_a_missing_binary_says_what_to_install():
    with pytest.raises(MissingBinaryError, match=re.escape(INSTALL_HINT)):
        find_binary("tingshuo-no-such-server")


def test_postgres_without_its_binaries_fails_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "_postgres_bin_dirs", list)
    monkeypatch.setattr(services, "FALLBACK_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBinaryError, match=re.escape(INSTALL_HINT)):
        PostgresServer(tmp_path / "postgres")


def test_a_service_that_cannot_start_fails_with_its_log(tmp_path):
    server = RedisServer(tmp_path / "redis")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        with pytest.raises(ServiceError, match="(?s)redis exited with status 1 while starting.*already in use"):
            server.start()
    assert not server.running


# PostgreSQL


@pytest.fixture
def postgres(tmp_path):
    server = PostgresServer(tmp_path / "postgres")
    yield server
    server.stop()


async def test_postgres_serves_sql_and_keeps_its_data_across_a_restart(postgres):
    await asyncio.to_thread(postgres.start)
    assert postgres.url == f"postgresql://tingshuo:{postgres.password}@127.0.0.1:{postgres.port}/tingshuo"
    conn = await asyncpg.connect(postgres.url, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_user") == "tingshuo"
        await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        await conn.execute("INSERT INTO notes VALUES (1, 'kept across restarts')")
    finally:
        await conn.close()

    port, data_dir = postgres.port, postgres.data_dir
    await asyncio.to_thread(postgres.stop)
    with pytest.raises(OSError):  # really down: nothing listens on its port
        await asyncpg.connect(postgres.url, timeout=5)
    await asyncio.to_thread(postgres.start)
    assert (postgres.port, postgres.data_dir) == (port, data_dir)
    conn = await asyncpg.connect(postgres.url, timeout=10)
    try:
        assert await conn.fetchval("SELECT body FROM notes WHERE id = 1") == "kept across restarts"
    finally:
        await conn.close()
    assert postgres.start_seconds is not None and postgres.start_seconds < 30


def test_postgres_keeps_everything_under_its_root(postgres):
    postgres.start()
    assert (postgres.data_dir / "PG_VERSION").is_file()
    assert postgres.log_path.parent == postgres.root and "database system is ready" in postgres.log_tail(400)
    assert not (postgres.root / "superuser-password").exists()  # initdb's password file is gone


# Redis


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


async def test_redis_sets_and_expires_keys_and_answers_again_after_a_restart(redis_server):
    await asyncio.to_thread(redis_server.start)
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = aioredis.from_url(redis_server.url, socket_timeout=5)
    try:
        await client.set("secret:abc", "worker1", ex=30)
        assert await client.get("secret:abc") == b"worker1"
        assert 0 < await client.ttl("secret:abc") <= 30
        await client.set("short", "1", px=200)
        await asyncio.sleep(0.5)
        assert await client.get("short") is None
    finally:
        await client.aclose()

    port = redis_server.port
    await asyncio.to_thread(redis_server.stop)
    client = aioredis.from_url(redis_server.url, socket_timeout=2, retry_on_timeout=False)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()
    await asyncio.to_thread(redis_server.start)
    assert redis_server.port == port
    client = aioredis.from_url(redis_server.url, socket_timeout=5)
    try:
        assert await client.ping() is True
        assert await client.get("secret:abc") is None  # --save "": a restarted Redis starts empty
        await client.set("again", "yes", ex=5)
        assert await client.get("again") == b"yes"
    finally:
        await client.aclose()


# nginx in front of stand-in workers


class StandInWorker:
    """A tiny aiohttp app on a free port: names itself on every answer, echoes on /v1/realtime, and
    while ``draining`` answers 503 on /v1/realtime and /readyz as a tingshuo worker does on SIGTERM."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.draining = False
        self.sessions = 0
        self.refused = 0
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._realtime)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._whoami)
        app.router.add_route("*", "/{tail:.*}", self._whoami)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"worker": self.name, "path": request.path, "method": request.method,
                                  "x_forwarded_for": request.headers.get("X-Forwarded-For"),
                                  "x_real_ip": request.headers.get("X-Real-IP"),
                                  "host": request.headers.get("Host")})

    async def _ready(self, request: web.Request) -> web.Response:
        if self.draining:
            self.refused += 1
            return web.Response(status=503, text="shutting down")
        return web.json_response({"worker": self.name, "ready": True})

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            self.refused += 1
            return web.Response(status=503, text="shutting down")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.sessions += 1
        try:
            await ws.send_json({"type": "session.created", "worker": self.name})
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(message.data)
        finally:
            self.sessions -= 1
        return ws


@pytest.fixture
async def workers():
    pair = [StandInWorker("A"), StandInWorker("B")]
    for worker in pair:
        await worker.start()
    yield pair
    for worker in pair:
        await worker.stop()


@pytest.fixture
async def nginx(tmp_path, workers):
    server = NginxServer(tmp_path / "nginx", [w.address for w in workers])
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def open_session(http: aiohttp.ClientSession, nginx: NginxServer) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(nginx.ws_url, timeout=aiohttp.ClientWSTimeout(ws_receive=10, ws_close=5))
    created = await ws.receive_json(timeout=10)
    assert created["type"] == "session.created"
    return ws, created["worker"]


async def test_nginx_proxies_http_and_websockets_with_forwarded_addresses(nginx, workers):
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.get(f"{nginx.url}/v1/personas") as response:
            assert response.status == 200
            body = await response.json()
        assert body["worker"] in ("A", "B") and body["path"] == "/v1/personas"
        assert body["x_forwarded_for"] == "127.0.0.1" and body["x_real_ip"] == "127.0.0.1"
        assert body["host"] == "127.0.0.1"  # $host: the name the client asked for

        async with http.get(f"{nginx.url}/readyz") as response:
            assert response.status == 200 and (await response.json())["ready"] is True
        async with http.get(f"{nginx.url}/metrics") as response:  # scraped per worker, not through here
            assert response.status == 404

        ws, worker = await open_session(http, nginx)
        try:
            for text in ("hello", "你好", "x" * 100_000):
                await ws.send_str(text)
                assert (await ws.receive(timeout=10)).data == text
        finally:
            await ws.close()
        assert worker in ("A", "B")


async def test_least_conn_spreads_open_sessions_over_the_workers(nginx, workers):
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        sessions = []
        try:
            for _ in range(4):
                sessions.append(await open_session(http, nginx))
            served = sorted(worker for _, worker in sessions)
            assert served == ["A", "A", "B", "B"], served
            assert [w.sessions for w in workers] == [2, 2]
        finally:
            for ws, _ in sessions:
                await ws.close()


async def test_a_draining_workers_refusals_go_to_the_other_worker(nginx, workers):
    a = workers[0]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        # A draining worker answers 503 to the handshake and to /readyz: nginx tries the other.
        a.draining = True
        held, worker = await open_session(http, nginx)
        assert worker == "B"
        # B now holds a session and A none, so least_conn tries A first: refused, then B.
        ws, worker = await open_session(http, nginx)
        await ws.close()
        await held.close()
        assert worker == "B" and a.refused >= 1
        assert any('"GET /v1/realtime HTTP/1.1" 101' in line and "upstream_status=503, 101" in line
                   for line in nginx.access_log_lines()), nginx.access_log_lines()
        for _ in range(3):
            async with http.get(f"{nginx.url}/readyz") as response:
                assert response.status == 200 and (await response.json())["worker"] == "B"


async def test_a_stopped_worker_is_skipped(nginx, workers):
    b = workers[1]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        # A worker that is gone (connection refused): every request still succeeds, on the other.
        await b.stop()
        began = time.monotonic()
        for _ in range(6):
            async with http.get(f"{nginx.url}/v1/personas") as response:
                assert response.status == 200 and (await response.json())["worker"] == "A"
            ws, worker = await open_session(http, nginx)
            await ws.close()
            assert worker == "A"
        assert time.monotonic() - began < 10  # a refused connection is retried at once, no timeout


async def test_nginx_restarts_on_its_port_and_reloads_new_upstreams(nginx, workers):
    a, b = workers
    port = nginx.port
    await asyncio.to_thread(nginx.stop)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"{nginx.url}/readyz"):
                pass
        await asyncio.to_thread(nginx.start)
        assert nginx.port == port
        async with http.get(f"{nginx.url}/readyz") as response:
            assert response.status == 200

        await asyncio.to_thread(nginx.reload, [b.address])
        for _ in range(4):
            async with http.get(f"{nginx.url}/v1/personas") as response:
                assert (await response.json())["worker"] == "B"
        await asyncio.to_thread(nginx.reload, [a.address, b.address])
        served = set()
        sessions = [await open_session(http, nginx) for _ in range(2)]
        for ws, worker in sessions:
            served.add(worker)
            await ws.close()
        assert served == {"A", "B"}


def test_the_documented_site_renders_only_its_marked_lines_and_passes_nginx_t(tmp_path):
    documented = SITE_TEMPLATE.read_text()
    rendered = render_site(documented, listen="127.0.0.1:18080", upstreams=["127.0.0.1:9001", "127.0.0.1:9002",
                                                                              "127.0.0.1:9003"])
    removed = [line for line in documented.splitlines() if line not in rendered.splitlines()]
    added = [line for line in rendered.splitlines() if line not in documented.splitlines()]
    assert [line.strip() for line in removed] == ["server worker1:8765 max_fails=2 fail_timeout=10s;",
                                                  "server worker2:8765 max_fails=2 fail_timeout=10s;",
                                                  "listen 80;"]
    assert [line.strip() for line in added] == ["server 127.0.0.1:9001 max_fails=2 fail_timeout=10s;",
                                                "server 127.0.0.1:9002 max_fails=2 fail_timeout=10s;",
                                                "server 127.0.0.1:9003 max_fails=2 fail_timeout=10s;",
                                                "listen 127.0.0.1:18080;"]
    for directive in ("least_conn;", "proxy_next_upstream error timeout http_502 http_503;",
                      "proxy_buffering off;", "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      "proxy_set_header X-Real-IP $remote_addr;", "proxy_set_header Upgrade $http_upgrade;",
                      "location = /readyz", "location = /v1/realtime"):
        assert directive in documented, directive
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", documented).group(1))
    assert read_timeout >= 60 * ServerSection().max_session_minutes

    output = NginxServer(tmp_path / "nginx", ["127.0.0.1:9001", "127.0.0.1:9002"]).check_config()
    assert "test is successful" in output
    with pytest.raises(ValueError, match="workers"):
        render_site("server { listen 80; }", listen="127.0.0.1:1", upstreams=["127.0.0.1:2"])


def test_a_broken_reload_keeps_nginx_serving_the_old_configuration(tmp_path):
    server = NginxServer(tmp_path / "nginx", ["127.0.0.1:9001"])
    server.start()
    try:
        with pytest.raises(ServiceError, match="nginx -t failed"):
            server.reload(["not an address"])
        assert server.running and server.upstreams == ["127.0.0.1:9001"]
        assert "127.0.0.1:9001" in server.site_path.read_text()
    finally:
        server.stop()
    assert not server.running


# Deployment files


def test_the_example_worker_config_loads():
    config = load_config(path=DEPLOY / "tingshuo.toml", environ={})
    assert config.state.backend == "redis+postgres"
    assert config.state.redis_url.startswith("redis://") and config.state.postgres_url.startswith("postgresql://")
    assert config.server.host == "0.0.0.0" and config.server.trusted_proxies == ("127.0.0.1",)
    assert config.server.api_key
    assert config.models.llm == "openai" and len(config.models.llm_endpoints) == 2 and config.models.llm_model
    # The systemd unit sets the port per instance on top of it.
    assert load_config(path=DEPLOY / "tingshuo.toml", environ={},
                       assignments=["server.port=8766"]).server.port == 8766


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def _exec_start(unit: configparser.ConfigParser) -> list[str]:
    return unit["Service"]["ExecStart"].replace("\\\n", " ").split()


def test_the_systemd_units_drain_workers_and_mirror_tingshuos_llama_server_flags(tmp_path):
    worker = _unit(DEPLOY / "systemd" / "tingshuo@.service")
    service = worker["Service"]
    assert service["ExecStart"] == "/opt/tingshuo/.venv/bin/tingshuo serve --set server.port=%i"
    assert "TINGSHUO_CONFIG=/etc/tingshuo/tingshuo.toml" in (DEPLOY / "systemd" / "tingshuo@.service").read_text()
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure" and service["User"]
    assert float(service["TimeoutStopSec"]) > ServerSection().shutdown_grace_s

    llama = _exec_start(_unit(DEPLOY / "systemd" / "llama-server.service"))
    ours = LlamaServerParams(binary=Path("llama-server"), model_path=Path("m.gguf")).arguments(8080)
    assert {a for a in ours if a.startswith("--")} <= {a for a in llama if a.startswith("--")}
    assert llama[llama.index("--host") + 1] == "0.0.0.0" and llama[llama.index("--port") + 1] == "8080"
    slots, context = int(llama[llama.index("--parallel") + 1]), int(llama[llama.index("--ctx-size") + 1])
    example = load_config(path=DEPLOY / "tingshuo.toml", environ={})
    assert context == slots * example.models.llm_context_tokens
    assert llama[llama.index("--alias") + 1] == example.models.llm_model

    if shutil.which("systemd-analyze"):  # part of systemd: checks every directive and value
        units = tmp_path / "units"
        units.mkdir()
        for name in ("tingshuo@.service", "llama-server.service"):
            shutil.copy(DEPLOY / "systemd" / name, units / name)
        (units / "tingshuo@8765.service").symlink_to("tingshuo@.service")
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", "tingshuo@8765.service",
                                 "llama-server.service"], check=False, cwd=units, capture_output=True, text=True, timeout=60)
        # The binaries are not installed here; anything else it reports is a mistake in the units.
        problems = [line for line in (result.stdout + result.stderr).splitlines()
                    if line.strip() and "is not executable: No such file or directory" not in line]
        assert not problems, problems


def test_compose_parses_and_uses_the_documented_files():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "llama", "worker1", "worker2", "nginx"} <= set(services)

    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)\b", SITE_TEMPLATE.read_text(), re.MULTILINE)
    assert upstreams == [("worker1", "8765"), ("worker2", "8765")]
    for name, port in upstreams:
        worker = services[name]
        assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY.parent / worker["build"]["dockerfile"]).is_file()
        assert "./tingshuo.toml:/etc/tingshuo/tingshuo.toml:ro" in worker["volumes"]
        env = worker["environment"]
        assert env["TINGSHUO_SERVER_PORT"] == port and env["TINGSHUO_STATE_BACKEND"] == "redis+postgres"
        probe = " ".join(worker["healthcheck"]["test"])
        assert f":{port}/readyz" in probe
        assert all(dep["condition"] == "service_healthy" for dep in worker["depends_on"].values())
        assert set(worker["depends_on"]) == {"postgres", "redis", "llama"}
        # The environment overrides the mounted example with keys it really has.
        config = load_config(path=DEPLOY / "tingshuo.toml", environ=env)
        assert config.state.redis_url == "redis://redis:6379/0"
        assert config.models.llm_endpoints == ("http://llama:8080/v1",)
        nginx_address = services["nginx"]["networks"]["fleet"]["ipv4_address"]
        assert config.server.trusted_proxies == (nginx_address,)

    nginx = services["nginx"]
    assert "./nginx/tingshuo.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert all((DEPLOY / volume.split(":")[0]).exists() for volume in nginx["volumes"])
    assert set(nginx["depends_on"]) == {"worker1", "worker2"}
    assert all(service.get("healthcheck") for service in services.values())
    assert "no Docker engine" in (DEPLOY / "compose.yaml").read_text()

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.findall(r"^FROM .*$", dockerfile, re.MULTILINE) == ["FROM python:3.11-slim"]
    assert "bash scripts/setup.sh" in dockerfile
    assert all(package in dockerfile for package in ("build-essential", "cmake", "npm", "git"))


def test_the_llama_server_flags_in_compose_match_the_unit():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    flags = compose["services"]["llama"]["command"]
    unit = _exec_start(_unit(DEPLOY / "systemd" / "llama-server.service"))
    for flag in ("--parallel", "--ctx-size", "--alias", "--port", "--cache-ram", "--poll"):
        assert flags[flags.index(flag) + 1] == unit[unit.index(flag) + 1], flag

