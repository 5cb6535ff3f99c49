"""The aiohttp application: the Realtime WebSocket, metrics, health and the web client.

Connection lifecycle lives here (accept or refuse, one reader loop, close);
the protocol logic lives in :class:`server.session.RealtimeSession`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.bundled_files import bundled_dir
from server.config import Config
from server import events
from server.client_address import forwarded_client, trusted_networks
from server.client_socket import ClientSocket
from server.client_secrets import ClientSecret, ClientSecretError
from server.ids import new_id
from server.shared_state.fleet_state import FleetState, local_fleet_state, redis_fleet_state
from server.shared_state.session_registry import SessionEntry
from server.shared_state.state_errors import SharedStateError
from server.session_settings import SettingsError, SessionSettings, apply_session_update
from server.engines import Engines
from server.metrics import ServerMetrics
from server.session import RealtimeSession
from server.thinking_services import ThinkingServices
from server.turn_capture import recording_mode
from server.turn_recorder import RecorderClosed, TurnRecorder
from thinking.personas import PersonaError, PersonaLibrary
from thinking.training_data.data_store import DataStoreError
from thinking.user_memory import MemoryStoreError, validate_user_id

log = logging.getLogger(__name__)

HARD_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""aiohttp closes the socket above this; below it, oversized messages get an error event."""
HEARTBEAT_S = 20.0

ENGINES_KEY = web.AppKey("engines", Engines)
CONFIG_KEY = web.AppKey("config", Config)
METRICS_KEY = web.AppKey("metrics", ServerMetrics)
SESSIONS_KEY = web.AppKey("sessions", set)
FLEET_KEY = web.AppKey("fleet_state", FleetState)
THINKING_KEY = web.AppKey("thinking", ThinkingServices)
RECORDER_KEY = web.AppKey("recorder", TurnRecorder)
DATA_REQUEST_TIMEOUT_S = 10.0
"""An erase or a correction waits behind the turns queued before it, on a disk that may be slow."""
@dataclass
class Lifecycle:
    """Mutable server state (aiohttp freezes the app's own mapping once it runs)."""

    shutting_down: bool = False


LIFECYCLE_KEY = web.AppKey("lifecycle", Lifecycle)
SOCKETS_KEY = web.AppKey("sockets", set)
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013

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


def holds_api_key(config: Config, request: web.Request) -> bool:
    key = presented_key(request)
    return key is not None and hmac.compare_digest(key.encode(), config.server.api_key.encode())


async def authorise(request: web.Request) -> tuple[bool, ClientSecret | None]:
    """(allowed, the client secret used if any). Without a configured key everyone is allowed.
    ``SharedStateError``: the secret could not be looked up (Redis is down)."""
    config = request.app[CONFIG_KEY]
    if not config.server.api_key:
        return True, None
    if holds_api_key(config, request):
        return True, None
    key = presented_key(request)
    secret = await request.app[FLEET_KEY].secrets.find(key) if key and key.startswith("ek_") else None
    return secret is not None, secret


def origin_allowed(config: Config, request: web.Request) -> bool:
    """Browsers send Origin; other clients do not, and the key is their check."""
    origin = request.headers.get("Origin")
    allowed = [o.strip() for o in config.server.allowed_origins.split(",") if o.strip()]
    return origin is None or not allowed or "*" in allowed or origin in allowed


async def realtime_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    config, sessions = app[CONFIG_KEY], app[SESSIONS_KEY]
    if app[LIFECYCLE_KEY].shutting_down:
        raise web.HTTPServiceUnavailable(text="server is shutting down", headers={"Retry-After": "5"})
    fleet = app[FLEET_KEY]
    remote = request.remote  # the client behind trusted proxies (server.trusted_proxies), else the peer
    if len(sessions) >= config.server.max_sessions:
        app[METRICS_KEY].sessions_rejected.inc()
        raise web.HTTPServiceUnavailable(
            text=f"server is full ({config.server.max_sessions} sessions); try again later",
            headers={"Retry-After": "5"},
        )
    entry = SessionEntry(id=new_id("sess"), worker=fleet.worker, client=remote or "unknown",
                         started_at=time.time())
    if not await fleet.admit(entry, limit=config.server.max_sessions_per_client):
        raise web.HTTPTooManyRequests(
            text=f"this address already has {config.server.max_sessions_per_client} sessions open",
            headers={"Retry-After": "5"})
    try:
        return await _serve_session(request, entry)
    finally:
        await fleet.release(entry)


async def _serve_session(request: web.Request, entry: SessionEntry) -> web.StreamResponse:
    app = request.app
    config, sessions = app[CONFIG_KEY], app[SESSIONS_KEY]
    remote = entry.client
    if not origin_allowed(config, request):
        log.warning("refused a connection from origin %s", request.headers.get("Origin"))
        raise web.HTTPForbidden(text="origin not allowed")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=HARD_MAX_MESSAGE_BYTES,
                               protocols=(REALTIME_SUBPROTOCOL,))
    await ws.prepare(request)
    try:
        allowed, secret = await authorise(request)
    except SharedStateError as exc:
        app[FLEET_KEY].failed(exc)
        await ws.send_json(events.error("the client secret could not be checked (the shared session store is "
                                        "unavailable); try again shortly", code="state_unavailable",
                                        type_="server_error"))
        await ws.close(code=CLOSE_TRY_AGAIN_LATER, message=b"state_unavailable")
        return ws
    if not allowed:
        # Accept, then refuse in-band: a browser sees only "1006" for a refused handshake,
        # while an error event and a close reason let the page say what is wrong.
        log.warning("refused a connection from %s: missing or wrong API key", remote)
        await ws.send_json(events.error("the API key or token was missing or not accepted",
                                        code="invalid_api_key", type_="authentication_error"))
        await ws.close(code=CLOSE_POLICY_VIOLATION, message=b"invalid_api_key")
        return ws
    binary_audio = request.query.get("audio") == "binary"
    client = ClientSocket(ws, request, send_timeout_s=config.server.send_timeout_s,
                          send_buffer_bytes=config.server.send_buffer_bytes)
    session = RealtimeSession(config=config, engines=app[ENGINES_KEY], metrics=app[METRICS_KEY],
                              send_text=client.send_str, send_bytes=client.send_bytes, binary_audio=binary_audio,
                              thinking=app[THINKING_KEY], recorder=app[RECORDER_KEY], session_id=entry.id)
    sessions.add(session)
    app[SOCKETS_KEY].add(ws)
    app[METRICS_KEY].sessions_active.inc()
    log.info("session %s opened from %s", session.settings.id, remote)
    try:
        user_id, user_error = _session_user(request, secret)
        await session.start(pinned=secret.session if secret is not None else None, user_id=user_id)
        if user_error:
            await session.send(events.error(user_error, code="invalid_user", param="user"))
        await _read_loop(ws, session, config)
    except ConnectionResetError:
        pass  # the client vanished mid-send; closing below is all that is left to do
    finally:
        await session.aclose()
        if client.stalled:
            app[METRICS_KEY].clients_stalled.inc()
        sessions.discard(session)
        app[SOCKETS_KEY].discard(ws)
        app[METRICS_KEY].sessions_active.dec()
        await ws.close()
        log.info("session %s closed", session.settings.id)
    return ws


def _session_user(request: web.Request, secret: ClientSecret | None) -> tuple[str | None, str | None]:
    """(user id for long-term memory, or an error). A browser's client secret carries the user its
    backend vouched for; ``?user=`` is taken only from API-key holders (or an open server)."""
    if secret is not None:
        return secret.user, None
    user = request.query.get("user")
    if not user:
        return None, None
    try:
        return validate_user_id(user), None
    except ValueError as exc:
        return None, f"?user= ignored: {exc}; this session has no long-term memory"


async def _read_loop(ws: web.WebSocketResponse, session: RealtimeSession, config: Config) -> None:
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + config.server.max_session_minutes * 60
    while True:
        left = ends_at - loop.time()
        try:
            msg = await ws.receive(timeout=max(0.0, min(config.server.idle_timeout_s, left)))
        except asyncio.TimeoutError:
            expired = loop.time() >= ends_at
            code, why = (("session_expired", f"sessions last at most {config.server.max_session_minutes:g} minutes")
                         if expired else ("idle_timeout", f"nothing received for {config.server.idle_timeout_s:g} s"))
            await session.send(events.error(f"{why}; the session is closed", code=code))
            await ws.close(code=1000, message=code.encode())
            return
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        if msg.type is WSMsgType.TEXT:
            await session.handle_text(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await session.handle_binary(msg.data)
        elif msg.type is WSMsgType.ERROR:
            log.warning("websocket error: %s", ws.exception())
            return


async def client_secrets_handler(request: web.Request) -> web.Response:
    """OpenAI's ``POST /v1/realtime/client_secrets``: API key in, short-lived secret out."""
    config = request.app[CONFIG_KEY]
    if not config.server.api_key:
        raise web.HTTPNotFound(text="client secrets need server.api_key to be set")
    if not holds_api_key(config, request):
        raise web.HTTPUnauthorized(text="the API key is missing or wrong",
                                   headers={"WWW-Authenticate": 'Bearer realm="tingshuo"'})
    try:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        ttl = float((body.get("expires_after") or {}).get("seconds", 600))
        session = body.get("session") or {}
        if not isinstance(session, dict):
            raise ValueError("session must be an object")
        settings = apply_session_update(SessionSettings(id="sess_preview"), session,  # refuse what session.update would
                                        request.app[THINKING_KEY].personas)
        user = body.get("user")
        if user is not None:
            user = validate_user_id(user)
        secret = await request.app[FLEET_KEY].secrets.mint(ttl_s=ttl, session=session, user=user)
    except (ValueError, TypeError, SettingsError, ClientSecretError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except SharedStateError as exc:
        request.app[FLEET_KEY].failed(exc)
        raise web.HTTPServiceUnavailable(text=f"client secrets are unavailable: {exc}",
                                         headers={"Retry-After": "5"}) from None
    wire = settings.to_wire()
    wire.pop("id", None)  # each session it opens gets its own id
    return web.json_response({"value": secret.value, "expires_at": int(secret.expires_at), "session": wire,
                              **({"user": secret.user} if secret.user else {})})


def _require_api_key(request: web.Request) -> None:
    config = request.app[CONFIG_KEY]
    if config.server.api_key and not holds_api_key(config, request):
        raise web.HTTPUnauthorized(text="the API key is missing or wrong",
                                   headers={"WWW-Authenticate": 'Bearer realm="tingshuo"'})


async def user_memory_handler(request: web.Request) -> web.Response:
    """``GET`` exports, ``DELETE`` erases everything tingshuo remembers of one user (API key only):
    the memory, and the conversations recorded for training (``recordings``: what was deleted)."""
    _require_api_key(request)
    thinking = request.app[THINKING_KEY]
    try:
        user = validate_user_id(request.match_info["user"])
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    if request.method != "DELETE" and thinking.memory is None:
        raise web.HTTPNotFound(text="long-term memory is off (memory.enabled = false)")
    loop = asyncio.get_running_loop()
    try:
        if request.method == "DELETE":
            deleted = 0
            if thinking.memory is not None:
                deleted = await loop.run_in_executor(thinking.executor, thinking.memory.delete_user, user)
            recordings = await _data_request(request.app[RECORDER_KEY].erase_user(user))
            log.info("deleted %d memory records and %d recorded conversations of a user on request",
                     deleted, recordings.conversations)
            return web.json_response({"user": user, "deleted": deleted, "recordings": {
                "conversations": recordings.conversations, "turns": recordings.turns,
                "audio_files": recordings.audio_files}})
        return web.json_response(await loop.run_in_executor(thinking.executor, thinking.memory.export, user))
    except MemoryStoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"memory unavailable: {exc}") from None


async def _data_request(future: Any) -> Any:
    """The recorder's answer to an erase or a correction (run on its writer thread, after the turns queued before)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), DATA_REQUEST_TIMEOUT_S)
    except (RecorderClosed, DataStoreError, asyncio.TimeoutError) as exc:
        why = str(exc) or "timed out"
        raise web.HTTPServiceUnavailable(text=f"the training data store is unavailable: {why}") from None


async def transcript_correction_handler(request: web.Request) -> web.Response:
    """``POST /v1/data/items/{item_id}/transcript`` ``{"text": ...}``: a person's transcript of a recorded
    user utterance; it replaces the recogniser's in every export (as ``tingshuo data correct``)."""
    _require_api_key(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be JSON: {\"text\": \"...\"}") from None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise web.HTTPBadRequest(text="'text' must be a non-empty string")
    item_id = request.match_info["item_id"]
    if not await _data_request(request.app[RECORDER_KEY].correct(item_id, text)):
        raise web.HTTPNotFound(text=f"no recorded utterance {item_id!r}")
    return web.json_response({"item_id": item_id, "corrected_text": text.strip()})


async def recording_handler(request: web.Request) -> web.Response:
    """``GET /v1/data/recording?session=ID`` (or ``?persona=ID``): whether the conversation is kept
    for training, ``{"record": "off" | "text" | "audio"}``, for the page's and the kiosk's notice.

    The Realtime events stay exactly OpenAI's schema, so the page asks here instead: after every
    ``session.created`` and ``session.updated`` (a persona picked mid-session can turn recording on
    or off), by the session's id, which the server resolves to its live settings (a persona pinned
    by a client secret included); before a session exists, by the persona the page will ask for.
    No key needed: it tells only what the page must show anyway; readable from any origin, for
    the widget embedded in other sites."""
    app = request.app
    config = app[CONFIG_KEY]
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
    if session_id := request.query.get("session"):
        session = next((s for s in app[SESSIONS_KEY] if s.settings.id == session_id), None)
        if session is None:
            raise web.HTTPNotFound(text=f"no open session {session_id!r}", headers=headers)
        return web.json_response({"record": session.capture.mode, "session": session_id}, headers=headers)
    persona_id = request.query.get("persona") or config.assistant.persona
    persona = None
    if persona_id:
        try:
            persona = app[THINKING_KEY].personas.get(persona_id)
        except PersonaError as exc:
            raise web.HTTPNotFound(text=str(exc), headers=headers) from None
    return web.json_response({"record": recording_mode(config, persona)}, headers=headers)


async def sessions_handler(request: web.Request) -> web.Response:
    """``GET /v1/sessions`` (API key): the open sessions of the whole fleet (with Redis; this worker's
    alone otherwise, or while Redis is down: ``"complete": false``)."""
    _require_api_key(request)
    fleet = request.app[FLEET_KEY]
    entries, complete = await fleet.fleet()
    workers: dict[str, int] = {}
    for entry in entries:
        workers[entry.worker] = workers.get(entry.worker, 0) + 1
    return web.json_response({"worker": fleet.worker, "complete": complete, "workers": workers,
                              "sessions": [{"id": e.id, "worker": e.worker, "client": e.client,
                                            "started_at": e.started_at} for e in entries]})


async def personas_handler(request: web.Request) -> web.Response:
    """The personas a client may pick with ``session.prompt`` (for a settings menu)."""
    library = request.app[THINKING_KEY].personas
    return web.json_response({"personas": [
        {"id": p.id, "version": str(p.version), "name": p.name, "language": p.language}
        for p in (library.get(pid) for pid in library.ids())]})


async def ready_handler(request: web.Request) -> web.Response:
    """Models are loaded before the app serves; an engine in a child process (llama-server) is
    ready once its own health check passes, and not while it restarts after a crash."""
    if request.app[LIFECYCLE_KEY].shutting_down:
        return web.json_response({"status": "shutting down"}, status=503)
    engines = request.app[ENGINES_KEY]
    if engines is not None and not engines.ready:
        return web.json_response({"status": "starting engines"}, status=503)
    body = {"status": "ready", "sessions": len(request.app[SESSIONS_KEY]), "worker": request.app[FLEET_KEY].worker,
            "knowledge_base": request.app[THINKING_KEY].knowledge_version}
    if engines is not None and (endpoints := getattr(engines.llm, "endpoints", None)) is not None:
        body["llm_endpoints"] = [{"url": e.url, "healthy": e.healthy, "conversations": e.conversations,
                                  "in_flight": e.in_flight} for e in endpoints()]
    return web.json_response(body)


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    metrics.loop_tasks.set(len(asyncio.all_tasks()))
    metrics.threads.set(threading.active_count())
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sessions": len(request.app[SESSIONS_KEY])})


def _static_dir(config: Config) -> Path:
    if config.server.static_dir:
        return Path(config.server.static_dir)
    return bundled_dir("client_web")


async def _allow_cross_origin_assets(request: web.Request, response: web.StreamResponse) -> None:
    """The widget is embedded by pages of other origins: its module and worklets need CORS."""
    if request.path.startswith("/static/"):
        response.headers["Access-Control-Allow-Origin"] = "*"


def _page_handler(path: Path):
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    return page


async def _drain_and_close(app: web.Application) -> None:
    """SIGTERM: aiohttp has stopped accepting; answers in flight may finish up to the grace
    period, then every session closes with 1001 (going away) so clients know to reconnect."""
    app[LIFECYCLE_KEY].shutting_down = True
    deadline = asyncio.get_running_loop().time() + app[CONFIG_KEY].server.shutdown_grace_s
    while any(s.answering for s in app[SESSIONS_KEY]) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.gather(*(ws.close(code=CLOSE_GOING_AWAY, message=b"server shutting down")
                           for ws in list(app[SOCKETS_KEY])), return_exceptions=True)
    await asyncio.gather(*(s.aclose() for s in list(app[SESSIONS_KEY])), return_exceptions=True)


async def _close_thinking(app: web.Application) -> None:
    await app[THINKING_KEY].aclose()


async def _start_fleet_state(app: web.Application) -> None:
    await app[FLEET_KEY].astart()


async def _close_fleet_state(app: web.Application) -> None:
    await app[FLEET_KEY].aclose()


async def _start_recorder(app: web.Application) -> None:
    """The recorder's writer thread starts with the server (and purges what is past retention)."""
    app[RECORDER_KEY].start()


async def _close_recorder(app: web.Application) -> None:
    """After the sessions (on_shutdown): the turns they kept are written, for a few seconds at most."""
    await app[RECORDER_KEY].aclose(grace_s=5.0)


async def _start_engines(app: web.Application) -> None:
    """Starts the engines that run beside the server (llama-server); /readyz waits for them."""
    engines = app[ENGINES_KEY]
    if engines is not None:
        await engines.astart()


async def _close_engines(app: web.Application) -> None:
    """After the sessions (on_shutdown) and the thinking services: the vLLM engine, the CosyVoice
    worker process, HTTP clients and the stage executors."""
    engines = app[ENGINES_KEY]
    if engines is not None:
        await engines.aclose()


def create_app(config: Config, engines: Engines, thinking: ThinkingServices | None = None,
               recorder: TurnRecorder | None = None, training_store: Any | None = None) -> web.Application:
    """``training_store``: the data stage's store, opened by ``tingshuo serve`` (PostgreSQL with
    ``state.backend = "redis+postgres"``); None: the local one under ``data.dir``."""
    trusted = trusted_networks(config.server.trusted_proxies)
    app = web.Application(client_max_size=config.server.max_message_bytes,
                          middlewares=[forwarded_client(trusted)] if trusted else [])
    app[CONFIG_KEY] = config
    app[ENGINES_KEY] = engines
    app[METRICS_KEY] = ServerMetrics()
    app[SESSIONS_KEY] = set()
    app[FLEET_KEY] = redis_fleet_state(config) if config.state.backend == "redis+postgres" else local_fleet_state(config)
    app[FLEET_KEY].on_error = lambda service: app[METRICS_KEY].shared_state_errors.labels(service=service).inc()
    app[SOCKETS_KEY] = set()
    app[LIFECYCLE_KEY] = Lifecycle()
    app[THINKING_KEY] = thinking or ThinkingServices(personas=PersonaLibrary([]))
    app[RECORDER_KEY] = recorder or TurnRecorder(config.data.dir, retention_days=config.data.retention_days,
                                                 counter=app[METRICS_KEY].recorded_turns, store=training_store)
    app.router.add_get("/v1/realtime", realtime_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    app.router.add_get("/readyz", ready_handler)
    app.router.add_post("/v1/realtime/client_secrets", client_secrets_handler)
    app.router.add_get("/v1/personas", personas_handler)
    app.router.add_get("/v1/sessions", sessions_handler)
    app.router.add_route("GET", "/v1/users/{user}/memory", user_memory_handler)
    app.router.add_route("DELETE", "/v1/users/{user}/memory", user_memory_handler)
    app.router.add_get("/v1/data/recording", recording_handler)
    app.router.add_post("/v1/data/items/{item_id}/transcript", transcript_correction_handler)
    static = _static_dir(config)
    if static.is_dir():
        for route, page in PAGES.items():
            if (static / page).is_file():
                app.router.add_get(route, _page_handler(static / page))
        app.router.add_static("/static/", static)
        app.on_response_prepare.append(_allow_cross_origin_assets)
    app.on_startup.append(_start_engines)
    app.on_startup.append(_start_recorder)
    app.on_startup.append(_start_fleet_state)
    app.on_shutdown.append(_drain_and_close)
    app.on_cleanup.append(_close_recorder)
    app.on_cleanup.append(_close_fleet_state)
    app.on_cleanup.append(_close_thinking)
    app.on_cleanup.append(_close_engines)
    return app
