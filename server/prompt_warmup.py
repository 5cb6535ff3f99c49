"""The next answer's prompt, read into the LLM's cache as soon as an answer ends (and when a
session starts or changes its instructions).

On two CPU cores llama-server reads a prompt at about 12-20 ms a token, and every turn's
prompt holds tokens known long before the user's next words: the chat template around the
user's turn, and the assistant's last answer wherever the history keeps it differently from
how it was generated (a speaker label dropped, an answer cut at a barge-in). Read after the
answer, while the user listens and then speaks, they are already in the slot's cache when
the answer to the next turn is asked for, which then reads only the user's words. A new
session's instructions (70-odd tokens, over a second here) are read while the user starts to speak.

Only for engines with per-conversation prompt caches (:class:`PromptCachingChatModel`). The
head is a guess (a search result or a longer user turn that pushes an old turn out of the
history budget changes the prompt); a wrong guess costs the CPU time of reading it, nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from models.interfaces import ChatMessage, PromptCachingChatModel
from server.config import Config
from server.response_planning import ResponseRequest, ToolChoice, instructions_for, plan_response
from server.session_thinking import SessionThinking

log = logging.getLogger(__name__)


async def read_prompt_head(llm: PromptCachingChatModel, thinking: SessionThinking, *, request: ResponseRequest,
                           tools: ToolChoice, history: Sequence[ChatMessage], language: str | None,
                           config: Config) -> None:
    messages = thinking.prompt_head(instructions=instructions_for(request, tools, config), history=history,
                                    language=language)
    plan = plan_response(request, config=config, tools=tools, messages=messages, fixed_text=None, filler_text="")
    try:
        await llm.prefill(plan.messages, plan.generation)
    except Exception as exc:  # noqa: BLE001 (a warm-up that fails costs the next answer nothing more)
        log.info("reading the next prompt ahead failed: %s", exc)
