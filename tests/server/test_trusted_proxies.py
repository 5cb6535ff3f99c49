"""``server.trusted_proxies``: behind a reverse proxy each client gets its own session limit and its own
address in the logs; X-Forwarded-For is believed only from a trusted peer. The real aiohttp app and
sessions, on scripted engines."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.client_address import client_address
from server.config import Config, ConfigError, ServerSection, load_config
from server.engines import Engines, Executors
from tests.server.session_harness import QuietVAD, ScriptedASR, ScriptedChat, SilentTTS


def nets(*specs: str) -> tuple:
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy():
    proxies = nets("10.0.0.0/8", "127.0.0.1")
    assert client_address("127.0.0.1", ["203.0.113.5"], proxies) == "203.0.113.5"
    # a client can write anything left of what the proxies appended: only the right-most untrusted hop counts
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.5"], proxies) == "203.0.113.5"
    assert client_address("127.0.0.1", ["198.51.100.1, 203.0.113.5, 10.2.3.4"], proxies) == "203.0.113.5"
    assert client_address("127.0.0.1", ["203.0.113.5", "10.2.3.4"], proxies) == "203.0.113.5"  # two headers
    assert client_address("127.0.0.1", ["10.9.9.9, 10.2.3.4"], proxies) == "10.9.9.9"  # all proxies: the first
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", ["[2001:db8::1]:443"], proxies) == "2001:db8::1"
    assert client_address("127.0.0.1", ["203.0.113.5:61000"], proxies) == "203.0.113.5"
    assert client_address("127.0.0.1", ["not-an-address, 10.2.3.4"], proxies) == "10.2.3.4"  # the walk stops
    assert client_address("::ffff:127.0.0.1", ["203.0.113.5"], proxies) == "203.0.113.5"
    # from an untrusted peer, or with no proxies configured, the header means nothing
    assert client_address("192.0.2.7", ["203.0.113.5"], proxies) == "192.0.2.7"
    assert client_address("127.0.0.1", ["203.0.113.5"], ()) == "127.0.0.1"


def test_the_setting_takes_a_toml_list_or_commas_and_refuses_what_is_no_address(tmp_path):
    assert Config().server.trusted_proxies == ()
    config = load_config(environ={}, assignments=["server.trusted_proxies=10.0.0.0/8, 127.0.0.1"])
    assert config.server.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    toml = tmp_path / "tingshuo.toml"
    toml.write_text('[server]\ntrusted_proxies = ["192.168.0.0/16", "::1"]\n', encoding="utf-8")
    assert load_config(path=toml, environ={}).server.trusted_proxies == ("192.168.0.0/16", "::1")
    assert load_config(environ={"TINGSHUO_SERVER_TRUSTED_PROXIES": "172.16.0.1"}).server.trusted_proxies == (
        "172.16.0.1",)
    with pytest.raises(ConfigError, match="proxy.example"):
        load_config(environ={}, assignments=["server.trusted_proxies=proxy.example"])


async def serve(trusted: tuple[str, ...]) -> TestClient:
    config = dataclasses.replace(Config(), server=ServerSection(max_sessions_per_client=1, trusted_proxies=trusted))
    engines = Engines(vad=QuietVAD(), turn=None, asr=ScriptedASR(), llm=ScriptedChat(["hi"]), tts=SilentTTS(),
                      executors=Executors())
    client = TestClient(TestServer(create_app(config, engines), host="127.0.0.1"))
    await client.start_server()
    return client


async def connect(client: TestClient, forwarded_for: str) -> aiohttp.ClientWebSocketResponse | int:
    """An open session, or the HTTP status that refused it."""
    try:
        ws = await client.ws_connect("/v1/realtime", headers={"X-Forwarded-For": forwarded_for})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    assert (await ws.receive_json(timeout=10))["type"] == "session.created"
    return ws


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(caplog):
    caplog.set_level(logging.INFO, logger="server.app")
    client = await serve(("127.0.0.1",))
    try:
        first = await connect(client, "203.0.113.1")
        second = await connect(client, "203.0.113.2")
        assert not isinstance(first, int) and not isinstance(second, int), "two clients, one proxy: both served"
        assert await connect(client, "203.0.113.1") == 429, "the first client's limit is 1"
        assert await connect(client, "198.51.100.9, 203.0.113.1") == 429, "a spoofed left-hand hop changes nothing"
        opened = [r.getMessage() for r in caplog.records if "opened from" in r.getMessage()]
        assert [m.rsplit(" ", 1)[1] for m in opened] == ["203.0.113.1", "203.0.113.2"]
        await first.close()
        await second.close()
    finally:
        await client.close()


async def test_from_an_untrusted_peer_the_header_is_ignored():
    client = await serve(("10.0.0.0/8",))  # the test client connects from 127.0.0.1: not a proxy we trust
    try:
        first = await connect(client, "203.0.113.1")
        assert not isinstance(first, int)
        assert await connect(client, "203.0.113.2") == 429, "both are 127.0.0.1, whatever the header says"
        await first.close()
    finally:
        await client.close()


async def test_without_trusted_proxies_the_peer_is_the_client():
    client = await serve(())
    try:
        first = await connect(client, "203.0.113.1")
        assert not isinstance(first, int)
        assert await connect(client, "203.0.113.2") == 429
        await first.close()
    finally:
        await client.close()
