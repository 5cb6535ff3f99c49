"""The aiohttp app, one session per WebSocket connection, and the Realtime protocol."""
