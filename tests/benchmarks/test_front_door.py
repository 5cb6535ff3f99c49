"""The front-door probe against two real aiohttp Realtime stand-ins, one of them slowed by a known
delay: the probe must see that delay in its opens and round trips, and nothing where there is none."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks.front_door import measure, report

DELAY_S = 0.02


def realtime_stand_in(delay_s: float) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(delay_s)
        await ws.send_str(json.dumps({"type": "session.created", "session": {}}))
        async for msg in ws:
            event = json.loads(msg.data)
            await asyncio.sleep(delay_s)
            await ws.send_str(json.dumps({"type": "session.updated", "session": event["session"]}))
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", handler)
    return app


async def test_the_probe_sees_a_known_delay_in_opens_and_round_trips():
    fast, slow = TestServer(realtime_stand_in(0.0)), TestServer(realtime_stand_in(DELAY_S))
    await fast.start_server()
    await slow.start_server()
    try:
        urls = {"fast": str(fast.make_url("/v1/realtime")).replace("http", "ws"),
                "slow": str(slow.make_url("/v1/realtime")).replace("http", "ws")}
        results = await measure(urls, sessions=3, rounds=5, headers={})
    finally:
        await fast.close()
        await slow.close()
    summary, markdown = report(results, label="stand-ins")
    assert [len(results[n].open_ms) for n in urls] == [3, 3]
    assert [len(results[n].round_trip_ms) for n in urls] == [15, 15]
    added = summary["slow"]["round_trip_ms"]["p50"] - summary["fast"]["round_trip_ms"]["p50"]
    assert added >= DELAY_S * 1000 * 0.9, added  # asyncio.sleep waits at least its delay; no upper bound under load
    assert summary["slow"]["open_ms"]["p50"] - summary["fast"]["open_ms"]["p50"] >= DELAY_S * 1000 * 0.9
    assert "`slow`: open +" in markdown
