"""The aiohttp application: the Realtime WebSocket, metrics, health and the web client.

Connection lifecycle lives here (accept or refuse, one reader loop, close);
the protocol logic lives in :class:`server.session.RealtimeSession`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.config import Config
from server import events
from server.engines import Engines
from server.metrics import ServerMetrics
from server.session import RealtimeSession

log = logging.getLogger(__name__)

HARD_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""aiohttp closes the socket above this; below it, oversized messages get an error event."""
HEARTBEAT_S = 20.0

ENGINES_KEY = web.AppKey("engines", Engines)
CONFIG_KEY = web.AppKey("config", Config)
METRICS_KEY = web.AppKey("metrics", ServerMetrics)
SESSIONS_KEY = web.AppKey("sessions", set)

REALTIME_SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
"""Browsers cannot set headers on a WebSocket, so Realtime web clients put the key in a subprotocol."""
CLOSE_POLICY_VIOLATION = 1008
PAGES = {"/": "index.html", "/kiosk": "kiosk.html", "/embed": "embed.html"}


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        if (proto := proto.strip()).startswith(KEY_SUBPROTOCOL_PREFIX):
            return proto[len(KEY_SUBPROTOCOL_PREFIX):]
    return None


def is_authorised(config: Config, request: web.Request) -> bool:
    if not config.server.api_key:
        return True
    key = presented_key(request)
    return key is not None and hmac.compare_digest(key.encode(), config.server.api_key.encode())


async def realtime_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    config, sessions = app[CONFIG_KEY], app[SESSIONS_KEY]
    if len(sessions) >= config.server.max_sessions:
        app[METRICS_KEY].sessions_rejected.inc()
        raise web.HTTPServiceUnavailable(
            text=f"server is full ({config.server.max_sessions} sessions); try again later",
            headers={"Retry-After": "5"},
        )
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=HARD_MAX_MESSAGE_BYTES,
                               protocols=(REALTIME_SUBPROTOCOL,))
    await ws.prepare(request)
    if not is_authorised(config, request):
        # Accept, then refuse in-band: a browser sees only "1006" for a refused handshake,
        # while an error event and a close reason let the page say what is wrong.
        log.warning("refused a connection from %s: missing or wrong API key", request.remote)
        await ws.send_json(events.error("the API key or token was missing or not accepted",
                                        code="invalid_api_key", type_="authentication_error"))
        await ws.close(code=CLOSE_POLICY_VIOLATION, message=b"invalid_api_key")
        return ws
    binary_audio = request.query.get("audio") == "binary"
    session = RealtimeSession(config=config, engines=app[ENGINES_KEY], metrics=app[METRICS_KEY],
                              send_text=ws.send_str, send_bytes=ws.send_bytes, binary_audio=binary_audio)
    sessions.add(session)
    app[METRICS_KEY].sessions_active.inc()
    log.info("session %s opened from %s", session.settings.id, request.remote)
    try:
        await session.start()
        await _read_loop(ws, session)
    except ConnectionResetError:
        pass  # the client vanished mid-send; closing below is all that is left to do
    finally:
        await session.aclose()
        sessions.discard(session)
        app[METRICS_KEY].sessions_active.dec()
        await ws.close()
        log.info("session %s closed", session.settings.id)
    return ws


async def _read_loop(ws: web.WebSocketResponse, session: RealtimeSession) -> None:
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await session.handle_text(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await session.handle_binary(msg.data)
        elif msg.type is WSMsgType.ERROR:
            log.warning("websocket error: %s", ws.exception())
            return


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sessions": len(request.app[SESSIONS_KEY])})


def _static_dir(config: Config) -> Path:
    if config.server.static_dir:
        return Path(config.server.static_dir)
    return Path(__file__).resolve().parent.parent / "client_web"


async def _allow_cross_origin_assets(request: web.Request, response: web.StreamResponse) -> None:
    """The widget is embedded by pages of other origins: its module and worklets need CORS."""
    if request.path.startswith("/static/"):
        response.headers["Access-Control-Allow-Origin"] = "*"


def _page_handler(path: Path):
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    return page


async def _close_sessions(app: web.Application) -> None:
    await asyncio.gather(*(s.aclose() for s in list(app[SESSIONS_KEY])), return_exceptions=True)


def create_app(config: Config, engines: Engines) -> web.Application:
    app = web.Application(client_max_size=config.server.max_message_bytes)
    app[CONFIG_KEY] = config
    app[ENGINES_KEY] = engines
    app[METRICS_KEY] = ServerMetrics()
    app[SESSIONS_KEY] = set()
    app.router.add_get("/v1/realtime", realtime_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    static = _static_dir(config)
    if static.is_dir():
        for route, page in PAGES.items():
            if (static / page).is_file():
                app.router.add_get(route, _page_handler(static / page))
        app.router.add_static("/static/", static)
        app.on_response_prepare.append(_allow_cross_origin_assets)
    app.on_shutdown.append(_close_sessions)
    return app
