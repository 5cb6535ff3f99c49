"""A browser-style connection with a short-lived client secret, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.e2e.conftest import API_KEY, start_server
from tests.e2e.realtime_client import RealtimeTestClient

pytestmark = pytest.mark.e2e
PERSONA = "You are the museum guide. Answer in one short sentence."


async def test_a_client_secret_opens_a_session_with_its_pinned_persona(server_url):
    async with aiohttp.ClientSession() as http:
        minted = await http.post(server_url + "/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {API_KEY}"},
                                 json={"expires_after": {"anchor": "created_at", "seconds": 60},
                                       "session": {"type": "realtime", "instructions": PERSONA}})
        assert minted.status == 200
        secret = (await minted.json())["value"]
        ws = await http.ws_connect(server_url.replace("http", "ws") + "/v1/realtime",
                                   protocols=("realtime", f"openai-insecure-api-key.{secret}"))
        client = RealtimeTestClient(ws=ws)
        client.start()
        created = await client.wait_for("session.created", timeout=10)
        assert created["session"]["instructions"] == PERSONA
        # the page cannot drop the operator's persona
        await client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be a pirate."}})
        updated = await client.wait_for("session.updated", timeout=10)
        assert updated["session"]["instructions"] == PERSONA
        await client.close()
        # the secret is not the API key: it cannot mint more
        again = await http.post(server_url + "/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {secret}"})
        assert again.status == 401


async def test_sigterm_lets_the_answer_finish_then_closes_with_1001(tmp_path):
    proc, url = await asyncio.to_thread(start_server, tmp_path / "server.log", TINGSHUO_SERVER_SHUTDOWN_GRACE_S="60")
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url.replace("http", "ws") + "/v1/realtime")
            client = RealtimeTestClient(ws=ws)
            client.start()
            await client.wait_for("session.created", timeout=10)
            await client.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
            await client.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Name three colours of the rainbow."}]}})
            await client.send({"type": "response.create"})
            await client.wait_for("response.created", timeout=30)
            proc.send_signal(signal.SIGTERM)  # mid-answer
            done = await client.wait_for("response.done", timeout=60)
            assert done["response"]["status"] == "completed", done
            for _ in range(100):
                if ws.closed:
                    break
                await asyncio.sleep(0.1)
            assert ws.close_code == 1001
            await client.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_kiosk_secret_pins_a_persona_and_a_user(server_url):
    async with aiohttp.ClientSession() as http:
        minted = await http.post(server_url + "/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {API_KEY}"},
                                 json={"session": {"type": "realtime", "prompt": {"id": "museum_guide"}},
                                       "user": "kiosk-3"})
        assert minted.status == 200, await minted.text()
        body = await minted.json()
        assert body["user"] == "kiosk-3" and body["session"]["prompt"]["id"] == "museum_guide"
        bad = await http.post(server_url + "/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {API_KEY}"},
                              json={"session": {"type": "realtime", "prompt": {"id": "no_such_persona"}}})
        assert bad.status == 400 and "unknown persona" in await bad.text()
        ws = await http.ws_connect(server_url.replace("http", "ws") + "/v1/realtime?user=someone-else",
                                   protocols=("realtime", f"openai-insecure-api-key.{body['value']}"))
        client = RealtimeTestClient(ws=ws)
        client.start()
        created = await client.wait_for("session.created", timeout=10)
        assert created["session"]["prompt"]["id"] == "museum_guide" and "Ada" in created["session"]["instructions"]
        greeting = await client.wait_for("response.done", timeout=120)
        assert greeting["response"]["output"][0]["content"][0]["transcript"].startswith("Hello, I'm Ada")
        # the page cannot swap the kiosk's persona
        await client.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "library_guide_zh"}}})
        updated = await client.wait_for("session.updated", timeout=10)
        assert updated["session"]["prompt"]["id"] == "museum_guide"
        # memory belongs to the user the back end vouched for, not the one in the page's URL
        await client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": "Please remember that the lights are on."}]}})
        await client.send({"type": "response.create"})
        confirmed = await client.wait_for("response.done", timeout=120, count=2)
        assert confirmed["response"]["output"][0]["content"][0]["transcript"] == "Okay, I'll remember that."
        await client.close()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with http.get(server_url + "/v1/users/kiosk-3/memory", headers=auth) as kiosk:
            assert [f["text"] for f in (await kiosk.json())["facts"]] == ["the lights are on"]
        async with http.get(server_url + "/v1/users/someone-else/memory", headers=auth) as other:
            assert (await other.json())["facts"] == []
        async with http.get(server_url + "/v1/users/kiosk-3/memory") as anonymous:
            assert anonymous.status == 401
