"""Two real ``tingshuo serve`` workers behind the documented nginx site, sharing state in real Redis
and PostgreSQL (Debian's, started here): what a fleet must do that one process could not.

1. a client secret minted through one worker connects through the other;
2. a fact remembered in a session on one worker is recalled in a session on the other;
3. the per-client session limit holds across both workers;
4. Redis or PostgreSQL stopped and started again: the conversation goes on (the documented
   degradation) and recovers;
5. a draining worker (SIGTERM) finishes its answer while new sessions go to the other;
6. (last: it kills a worker) the web page, its worker killed mid-conversation, reconnects through
   nginx to the other within its backoff, and the user's memory is intact.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import start_server
from tests.e2e.realtime_client import RealtimeTestClient
from tests.fleet.services import NginxServer, PostgresServer, RedisServer

pytestmark = pytest.mark.e2e

API_KEY = "fleet-test-key"
PER_CLIENT = 2
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Fleet:
    root: Path
    postgres: PostgresServer
    redis: RedisServer
    nginx: NginxServer
    workers: dict[str, tuple[subprocess.Popen, str]] = field(default_factory=dict)

    def worker_url(self, name: str) -> str:
        return self.workers[name][1]


def _worker_env(name: str, fleet: Fleet | None = None, *, postgres: PostgresServer | None = None,
                redis: RedisServer | None = None) -> dict[str, str]:
    postgres = postgres or fleet.postgres
    redis = redis or fleet.redis
    return {"TINGSHUO_SERVER_API_KEY": API_KEY, "TINGSHUO_STATE_BACKEND": "redis+postgres",
            "TINGSHUO_STATE_REDIS_URL": redis.url, "TINGSHUO_STATE_POSTGRES_URL": postgres.url,
            "TINGSHUO_STATE_WORKER_ID": name, "TINGSHUO_SERVER_TRUSTED_PROXIES": "127.0.0.1",
            "TINGSHUO_SERVER_MAX_SESSIONS_PER_CLIENT": str(PER_CLIENT), "TINGSHUO_ASSISTANT_SEED": "1",
            "TINGSHUO_DATA_RECORD": "text"}


def _start_worker(name: str, fleet_root: Path, postgres: PostgresServer, redis: RedisServer,
                  out: dict[str, tuple[subprocess.Popen, str]], errors: list[BaseException]) -> None:
    root = fleet_root / name
    root.mkdir()
    try:
        out[name] = start_server(root / "server.log", **_worker_env(name, postgres=postgres, redis=redis))
    except BaseException as exc:  # noqa: BLE001 (pytest.fail in a thread: reported by the fixture)
        errors.append(exc)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    postgres, redis = PostgresServer(root / "postgres"), RedisServer(root / "redis")
    postgres.start()
    redis.start()
    workers: dict[str, tuple[subprocess.Popen, str]] = {}
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_start_worker, args=(name, root, postgres, redis, workers, errors))
               for name in ("worker-a", "worker-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    nginx = None
    try:
        if errors:
            pytest.fail(f"a worker did not start: {errors[0]}")
        upstreams = [url.removeprefix("http://") for _, url in (workers["worker-a"], workers["worker-b"])]
        nginx = NginxServer(root / "nginx", upstreams)
        nginx.start()
        yield Fleet(root=root, postgres=postgres, redis=redis, nginx=nginx, workers=workers)
    finally:
        for proc, _ in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if nginx is not None:
            nginx.stop()
        redis.stop()
        postgres.stop()


async def _open(http: aiohttp.ClientSession, ws_url: str, *, query: str = "", token: str = API_KEY,
                forwarded_for: str | None = None) -> RealtimeTestClient:
    headers = {"Authorization": f"Bearer {token}"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    ws = await http.ws_connect(ws_url + query, max_msg_size=0, headers=headers)
    client = RealtimeTestClient(ws=ws)
    client.start()
    await client.wait_for("session.created", timeout=15)
    await client.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await client.wait_for("session.updated", timeout=15)
    return client


async def _ask(client: RealtimeTestClient, text: str, *, timeout: float = 120) -> dict:
    done_before = len(client.of_type("response.done"))
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await client.send({"type": "response.create"})
    return (await client.wait_for("response.done", timeout=timeout, count=done_before + 1))["response"]


def _said(response: dict) -> str:
    content = response["output"][0]["content"][0]
    return content.get("transcript") or content.get("text") or ""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _ws(url: str) -> str:
    return url.replace("http", "ws", 1) + "/v1/realtime"


async def _mint(http: aiohttp.ClientSession, base: str, user: str) -> str:
    async with http.post(base + "/v1/realtime/client_secrets", headers=AUTH,
                         json={"user": user, "expires_after": {"seconds": 600}}) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["value"]


async def _sessions(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(base + "/v1/sessions", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_secret_minted_through_one_worker_opens_a_session_on_the_other(fleet):
    async with aiohttp.ClientSession() as http:
        secret = await _mint(http, fleet.worker_url("worker-a"), user="kiosk-visitor-1")
        client = await _open(http, _ws(fleet.worker_url("worker-b")), token=secret)
        listed = await _sessions(http, fleet.worker_url("worker-a"))
        session_id = client.of_type("session.created")[0]["session"]["id"]
        assert listed["complete"] and {"id": session_id, "worker": "worker-b"}.items() <= next(
            s for s in listed["sessions"] if s["id"] == session_id).items(), listed
        reply = await _ask(client, "Say hello in three words.")
        assert reply["status"] == "completed" and _said(reply).strip()
        await client.close()
        refused = await http.ws_connect(_ws(fleet.worker_url("worker-b")), headers={"Authorization": "Bearer ek_forged"})
        error = json.loads((await refused.receive(timeout=10)).data)
        assert error["error"]["code"] == "invalid_api_key"
        await refused.close()


async def test_a_fact_remembered_on_one_worker_is_recalled_on_the_other(fleet):
    async with aiohttp.ClientSession() as http:
        first = await _open(http, _ws(fleet.worker_url("worker-a")), query="?user=visitor-7")
        assert _said(await _ask(first, "Please remember that my locker number is 42.")) == "Okay, I'll remember that."
        await first.close()
        second = await _open(http, _ws(fleet.worker_url("worker-b")), query="?user=visitor-7")
        recalled = await _ask(second, "What is my locker number?")
        await second.close()
        async with http.get(fleet.worker_url("worker-b") + "/v1/users/visitor-7/memory", headers=AUTH) as response:
            exported = await response.json()
        async with http.delete(fleet.worker_url("worker-a") + "/v1/users/visitor-7/memory", headers=AUTH) as response:
            assert (await response.json())["deleted"] >= 1
        async with http.get(fleet.worker_url("worker-b") + "/v1/users/visitor-7/memory", headers=AUTH) as response:
            after = await response.json()
    assert "42" in _said(recalled), _said(recalled)
    assert [f["text"] for f in exported["facts"]] == ["my locker number is 42"]
    assert after["facts"] == []


async def test_turns_recorded_on_both_workers_land_in_one_store_that_exports(fleet, tmp_path):
    import sys

    from tests.e2e.conftest import REPO

    async with aiohttp.ClientSession() as http:
        for worker, user in (("worker-a", "recorded-a"), ("worker-b", "recorded-b")):
            client = await _open(http, _ws(fleet.worker_url(worker)), query=f"?user={user}")
            assert (await _ask(client, "Say hello in three words."))["status"] == "completed"
            await client.close()
    out = tmp_path / "export"
    argv = [sys.executable, "-m", "tingshuo", "data", "export", "--format", "openai", "--out", str(out),
            "--set", "state.backend=redis+postgres", "--set", f"state.postgres_url={fleet.postgres.url}",
            "--set", f"data.dir={tmp_path / 'data'}"]
    deadline = time.monotonic() + 30  # each worker's recorder writes after the turn, off its answer's path
    while True:
        result = await asyncio.to_thread(subprocess.run, argv, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        examples = [json.loads(line) for path in out.rglob("*.jsonl") for line in path.read_text().splitlines()]
        users = {m["content"] for e in examples for m in e["messages"] if m["role"] == "user"}
        if "Say hello in three words." in users and len(examples) >= 2:
            break
        assert time.monotonic() < deadline, (result.stdout, examples)
        await asyncio.sleep(1)


async def test_the_per_client_limit_holds_across_both_workers_behind_nginx(fleet):
    visitor = "203.0.113.77"
    async with aiohttp.ClientSession() as http:
        opened = [await _open(http, fleet.nginx.ws_url, forwarded_for=visitor) for _ in range(PER_CLIENT)]
        listed = await _sessions(http, fleet.nginx.url)
        mine = [s for s in listed["sessions"] if s["client"] == visitor]
        assert len(mine) == PER_CLIENT and {s["worker"] for s in mine} == {"worker-a", "worker-b"}, (
            "least_conn put the two sessions on different workers", listed)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(fleet.nginx.ws_url, headers={**AUTH, "X-Forwarded-For": visitor})
        assert refused.value.status == 429
        other = await _open(http, fleet.nginx.ws_url, forwarded_for="203.0.113.78")
        spoofed_left = "198.51.100.1, " + visitor  # only the address nginx saw counts
        with pytest.raises(aiohttp.WSServerHandshakeError) as again:
            await http.ws_connect(fleet.nginx.ws_url, headers={**AUTH, "X-Forwarded-For": spoofed_left})
        assert again.value.status == 429
        for client in [*opened, other]:
            await client.close()
        deadline = time.monotonic() + 20
        while any(s["client"] == visitor for s in (await _sessions(http, fleet.nginx.url))["sessions"]):
            assert time.monotonic() < deadline, "closed sessions leave the registry"
            await asyncio.sleep(0.2)
        reopened = await _open(http, fleet.nginx.ws_url, forwarded_for=visitor)
        await reopened.close()


async def test_postgres_stopped_and_started_again_costs_memory_for_a_while_not_the_conversation(fleet):
    async with aiohttp.ClientSession() as http:
        client = await _open(http, fleet.nginx.ws_url, query="?user=visitor-pg")
        fleet.postgres.stop()
        try:
            reply = await _ask(client, "Please remember that I like jazz.")
            errors = [e["error"]["code"] for e in client.of_type("error")]
            assert "memory_unavailable" in errors, errors
            assert reply["status"] == "completed" and _said(reply) != "Okay, I'll remember that.", _said(reply)
            plain = await _ask(client, "Say hello in three words.")
            assert plain["status"] == "completed" and _said(plain).strip(), "the conversation goes on"
        finally:
            fleet.postgres.start()
        reply = await _ask(client, "Please remember that I like jazz.")
        assert _said(reply) == "Okay, I'll remember that.", "memory is back with the server"
        await client.close()
        async with http.get(fleet.nginx.url + "/v1/users/visitor-pg/memory", headers=AUTH) as response:
            assert [f["text"] for f in (await response.json())["facts"]] == ["I like jazz"]


async def test_redis_stopped_and_started_again_costs_new_secrets_for_a_while_not_the_conversation(fleet):
    async with aiohttp.ClientSession() as http:
        client = await _open(http, fleet.nginx.ws_url)
        session_id = client.of_type("session.created")[0]["session"]["id"]
        secret = await _mint(http, fleet.nginx.url, user="visitor-redis")
        fleet.redis.stop()
        try:
            plain = await _ask(client, "Say hello in three words.")
            assert plain["status"] == "completed" and _said(plain).strip(), "the open session goes on"
            async with http.post(fleet.nginx.url + "/v1/realtime/client_secrets", headers=AUTH, json={}) as response:
                assert response.status == 503 and "Redis" in await response.text()
            refused = await http.ws_connect(fleet.nginx.ws_url, headers={"Authorization": f"Bearer {secret}"})
            error = json.loads((await refused.receive(timeout=10)).data)
            assert error["error"]["code"] == "state_unavailable"
            closing = await refused.receive(timeout=10)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1013
            keyed = await _open(http, fleet.nginx.ws_url)  # an API-key client: admitted on the worker's own count
            listed = await _sessions(http, fleet.nginx.url)
            assert listed["complete"] is False
            await keyed.close()
        finally:
            fleet.redis.start()
        counted = 0.0
        for worker in ("worker-a", "worker-b"):
            async with http.get(fleet.worker_url(worker) + "/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith('tingshuo_shared_state_errors_total{service="Redis"}'):
                        counted += float(line.split()[-1])
        assert counted >= 2, "the failed mint and the failed secret lookup are counted"
        secret = await _mint(http, fleet.nginx.url, user="visitor-redis")
        again = await _open(http, fleet.nginx.ws_url, token=secret)
        await again.close()
        deadline = time.monotonic() + 30  # the workers' heartbeats put their open sessions back
        while True:
            listed = await _sessions(http, fleet.nginx.url)
            if listed["complete"] and any(s["id"] == session_id for s in listed["sessions"]):
                break
            assert time.monotonic() < deadline, listed
            await asyncio.sleep(0.5)
        after = await _ask(client, "Say goodbye in three words.")
        assert after["status"] == "completed"
        await client.close()


async def test_a_draining_worker_finishes_its_answer_while_new_sessions_go_to_the_other(fleet):
    """SIGTERM: the worker stops accepting at once (nginx takes the refused connection to the other
    worker), the answer in flight plays to its end, then the session closes with 1001 (going away)
    for the client to reconnect. The worker is started again afterwards, for the tests after this."""
    proc, url = fleet.workers["worker-a"]
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(_ws(url), headers=AUTH, max_msg_size=0)
        client = RealtimeTestClient(ws=ws)
        client.start()
        await client.wait_for("session.created", timeout=15)
        await client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Describe a lighthouse at night in two sentences."}]}})
        await client.send({"type": "response.create"})
        await client.wait_for("response.output_audio.delta", timeout=120)
        proc.send_signal(signal.SIGTERM)
        others = []
        for n in range(3):
            other = await _open(http, fleet.nginx.ws_url, forwarded_for=f"192.0.2.{60 + n}")
            others.append(other.of_type("session.created")[0]["session"]["id"])
            await other.close()
        listed = await _sessions(http, fleet.worker_url("worker-b"))
        done = (await client.wait_for("response.done", timeout=60))["response"]
        await asyncio.wait_for(client._reader, 30)
        close_code = ws.close_code
        assert proc.wait(30) == 0
    on = {s["id"]: s["worker"] for s in listed["sessions"]}
    assert all(on.get(i) in ("worker-b", None) for i in others), listed  # None: already closed and gone
    assert done["status"] == "completed", done
    assert close_code == 1001, close_code
    restarted = start_server(fleet.root / "worker-a" / "server-restarted.log", **_worker_env("worker-a", fleet))
    fleet.workers["worker-a"] = restarted
    fleet.nginx.reload([u.removeprefix("http://") for _, u in (restarted, fleet.workers["worker-b"])])


def test_the_page_reconnects_to_the_other_worker_when_its_worker_is_killed(fleet, tmp_path):
    """Last: it kills a worker. The page holds a client secret for its visitor; its worker dies
    mid-conversation; nginx sends the reconnect to the survivor, which knows the secret (Redis)
    and the visitor's memory (PostgreSQL)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import browser_page, microphone_wav, require_chromium, wait_for_stats

    require_chromium()

    async def mint() -> str:
        async with aiohttp.ClientSession() as http:
            return await _mint(http, fleet.nginx.url, user="page-visitor")

    def sessions() -> dict:  # plain urllib: the sync Playwright runs an event loop in this thread
        request = urllib.request.Request(fleet.nginx.url + "/v1/sessions", headers=AUTH)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    secret = asyncio.run(mint())
    typed = """(text) => {
        const c = document.querySelector('tingshuo-assistant').session.connection;
        c.send({type: 'conversation.item.create', item: {type: 'message', role: 'user',
                content: [{type: 'input_text', text}]}});
        c.send({type: 'response.create'});
    }"""
    answers = """() => [...document.querySelector('tingshuo-assistant').shadowRoot
        .querySelectorAll('.turn.assistant .text')].map(t => t.textContent)"""
    with sync_playwright() as playwright, browser_page(playwright, microphone_wav(tmp_path / "quiet.wav", 120)) as page:
        page.goto(f"{fleet.nginx.url}/?lang=en&language=en&token={secret}")
        page.click("tingshuo-assistant >> .talk")
        wait_for_stats(page, "s.state === 'listening'", timeout_s=60)
        page.evaluate(typed, "Please remember that my locker number is 42.")
        page.wait_for_function(f"() => ({answers})().some(t => t.includes('remember'))", timeout=120_000)
        mine = [s for s in sessions()["sessions"] if s["client"] == "127.0.0.1"]
        assert len(mine) == 1, mine
        doomed = mine[0]["worker"]
        survivor = "worker-b" if doomed == "worker-a" else "worker-a"
        proc = fleet.workers[doomed][0]
        children = _children(proc.pid)
        assert children, "the worker runs its llama-server as a child"
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)  # mid-conversation: no goodbye, no close frame
        proc.wait(10)
        s = wait_for_stats(page, "s.notices.includes('reconnected') && s.state === 'listening'", timeout_s=30)
        reconnected_s = time.monotonic() - killed_at
        assert "dropped" in s["notices"], s["notices"]
        # The page's backoff starts at 0.5 s and doubles; the first or second try must land.
        assert reconnected_s < 15, reconnected_s
        # The dead worker's entry stays listed until its TTL (tingshuo's registry forgets it unrefreshed).
        now_on = [s for s in sessions()["sessions"] if s["client"] == "127.0.0.1" and s["id"] != mine[0]["id"]]
        assert [s["worker"] for s in now_on] == [survivor], now_on
        page.evaluate(typed, "What is my locker number?")
        page.wait_for_function(f"() => ({answers})().some(t => t.includes('42'))", timeout=120_000)
    deadline = time.monotonic() + 10  # the parent-death signal takes the killed worker's llama-server with it
    while any(Path(f"/proc/{child}").exists() and _state(child) != "Z" for child in children):
        assert time.monotonic() < deadline, f"the killed worker left {children} running"
        time.sleep(0.1)
    with urllib.request.urlopen(urllib.request.Request(fleet.nginx.url + "/v1/users/page-visitor/memory",
                                                       headers=AUTH), timeout=10) as response:
        assert [f["text"] for f in json.loads(response.read())["facts"]] == ["my locker number is 42"]
    try:
        urllib.request.urlopen(fleet.worker_url(doomed) + "/readyz", timeout=2)
        pytest.fail("the killed worker still answers")
    except urllib.error.URLError:
        pass
