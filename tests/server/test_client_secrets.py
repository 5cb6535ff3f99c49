"""Short-lived client secrets and the Origin allow-list, on the real aiohttp app (no models needed)."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.client_secrets import ClientSecretError, ClientSecrets
from server.config import Config, ServerSection


def test_a_secret_lives_until_it_expires():
    store = ClientSecrets()
    secret = store.mint(ttl_s=60, session={"instructions": "Be a museum guide."}, now=1000.0)
    assert secret.value.startswith("ek_") and len(secret.value) > 30
    assert store.find(secret.value, now=1059.0) is secret
    assert store.find(secret.value, now=1060.0) is None  # expired, and forgotten
    assert store.find(secret.value, now=1000.0) is None
    assert store.find("ek_made_up", now=1000.0) is None
    with pytest.raises(ClientSecretError):
        store.mint(ttl_s=5)
    with pytest.raises(ClientSecretError):
        store.mint(ttl_s=10_000)


def test_the_store_is_bounded(monkeypatch):
    monkeypatch.setattr("server.client_secrets.MAX_LIVE_SECRETS", 3)
    store = ClientSecrets()
    values = [store.mint(ttl_s=100 + i, now=0.0).value for i in range(5)]
    assert len(store.secrets) == 3 and set(store.secrets) == set(values[2:])


@pytest.fixture
async def client():
    config = dataclasses.replace(Config(), server=ServerSection(api_key="k", allowed_origins="https://kiosk.example"))
    app = create_app(config, engines=None)  # these paths never reach a model
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_minting_needs_the_api_key(client):
    assert (await client.post("/v1/realtime/client_secrets")).status == 401
    assert (await client.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer nope"})).status == 401
    ok = await client.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer k"},
                           json={"expires_after": {"anchor": "created_at", "seconds": 120},
                                 "session": {"type": "realtime", "instructions": "Speak as a guide."}})
    assert ok.status == 200
    body = await ok.json()
    assert body["value"].startswith("ek_") and body["session"]["instructions"] == "Speak as a guide."
    # a client secret cannot mint more secrets
    again = await client.post("/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {body['value']}"})
    assert again.status == 401


async def test_bad_requests_are_refused_with_a_reason(client):
    for body in ({"expires_after": {"seconds": 1}}, {"session": {"audio": {"input": {"format": {"rate": 8000}}}}},
                 ["not", "an", "object"]):
        response = await client.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer k"}, json=body)
        assert response.status == 400, body
        assert (await response.text()).strip()


async def test_origins_outside_the_allow_list_are_refused(client):
    refused = await client.get("/v1/realtime", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                        "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status == 403


async def test_readyz_reports_ready(client):
    response = await client.get("/readyz")
    assert response.status == 200 and (await response.json())["status"] == "ready"
