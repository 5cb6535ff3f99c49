"""Who the client is when the server sits behind reverse proxies (``server.trusted_proxies``).

``X-Forwarded-For`` is believed only from the proxies the operator listed; anyone else could
write any address there and escape the per-client session limit.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """``server.trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a proxy writes it in X-Forwarded-For (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the direct peer, unless the peer is a trusted proxy; then the right-most
    X-Forwarded-For address that is not itself a trusted proxy (a client can write anything to the left
    of what its proxies appended, so nothing further left is believed). All of them trusted: the left-most.
    An entry that is no address ends the walk at the proxy that wrote it."""
    peer_address = _address(peer or "")
    if not trusted or peer_address is None or not any(peer_address in net for net in trusted):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    believed = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        believed = address
        if not any(address in net for net in trusted):
            break
    return str(believed)


def forwarded_client(trusted: tuple[Network, ...]):
    """Middleware: ``request.remote`` becomes the client behind trusted proxies, for the per-client
    session limit and every log line that names the client."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        client = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
        return await handler(request if client == request.remote else request.clone(remote=client))

    return middleware
