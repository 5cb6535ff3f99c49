"""The events that close a response, in the order clients expect: its parts done, its item
done, ``response.done`` with the latency marks; and the sources line of a grounded answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from server import events
from server.metrics import ServerMetrics

if TYPE_CHECKING:
    from server.responder import AssistantResponse

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_citations(send: Send, response: AssistantResponse) -> None:
    """Sources go into the transcript, never into the audio."""
    ids = {"response_id": response.request.response_id, "item_id": response.item.id}
    delta = "\n" + response.citations
    if response.request.speaks:
        await send(events.audio_transcript_delta(**ids, delta=delta))
    else:
        await send(events.text_delta(**ids, delta=delta))


async def send_done(send: Send, metrics: ServerMetrics, response: AssistantResponse, *, status: str,
                    reason: str | None, conversation_id: str) -> None:
    request, item = response.request, response.item
    ids = {"response_id": request.response_id, "item_id": item.id}
    text = item.wire_text()
    if request.speaks:
        await send(events.audio_done(**ids))
        await send(events.audio_transcript_done(**ids, transcript=text))
    else:
        await send(events.text_done(**ids, text=text))
    await send(events.content_part_done(**ids, part_type="audio" if request.speaks else "text", text=text))
    await send(events.output_item_done(response_id=request.response_id, item=item.to_wire()))
    await send(events.item_done(item.to_wire(), previous_item_id=response.previous_item_id))
    latency = response.timeline.as_ms()
    metrics.observe_timeline(latency)
    metrics.responses.labels(status=status).inc()
    log.info("response %s %s latency_ms=%s", request.response_id, status, latency)
    output = [item.to_wire(), *(extra.to_wire() for extra in response.tool_calls.output_items)]
    await send(events.response_done(request.to_wire(status=status, conversation_id=conversation_id, output=output,
                                                    reason=reason, latency=latency)))
