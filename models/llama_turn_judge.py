"""Does the user's message end here? The embedded LLM's probability that the next token closes it.

Smart Turn judges a turn by its sound, and on Mandarin it is often sure of a sentence cut
in half: on the shared recordings with a pause spliced in mid-sentence it scored 9 of 12
first halves as finished (``python -m benchmarks.paused_corpus``). The words tell better.
Given the transcript so far as a user message that is still open, the chat model's next
token is a sentence end or ``<|im_end|>`` with some probability: 0.00-0.04 for ten of
those twelve halves ("甚至出现交", "希望你以后能够做的"), 0.17-0.47 for most whole sentences
(measured with the embedded Qwen2.5-0.5B, trailing punctuation removed, as here).

One ``/completion`` request of two tokens with ``n_probs`` on llama-server's background slot,
whose cached prefix (the ChatML header) is the same every time: it reads only the user's
words. The embedded models (Qwen2.5, SmolLM2) both use ChatML.
"""

from __future__ import annotations

import math
import re
from typing import Any

import aiohttp

ENDINGS = frozenset({"<|im_end|>", "。", "？", "！", "?", "!", ".", "…"})
"""Tokens (stripped of whitespace) that end the user's message."""
PROBS = 20
"""Top tokens asked for: the endings that matter are among them whenever they are likely."""
SYSTEM = "You are a voice assistant. 你是一个语音助手。"
_TRAILING = re.compile(r"[。！？，、,.!?…\s]+$")


def prompt_for(text: str) -> str:
    return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{_TRAILING.sub('', text)}"


def ending_probability(response: dict[str, Any]) -> float:
    """The summed probability of :data:`ENDINGS` among the top tokens of llama-server's answer
    (its ``completion_probabilities``, in either of its formats: ``top_logprobs`` or ``probs``)."""
    steps = response.get("completion_probabilities") or []
    if not steps:
        if response.get("stop_type") == "eos" or response.get("stopped_eos"):
            return 1.0  # the end of the message itself was sampled: generation stopped before any token
        raise ValueError("llama-server returned no token probabilities")
    total = 0.0
    for entry in steps[0].get("top_logprobs") or steps[0].get("probs") or []:
        token = (entry.get("token") or entry.get("tok_str") or "").strip()
        if token in ENDINGS:
            total += math.exp(entry["logprob"]) if "logprob" in entry else float(entry.get("prob", 0.0))
    return min(1.0, total)


async def end_of_message_probability(session: aiohttp.ClientSession, base_url: str, text: str, *,
                                     slot: int, timeout_s: float) -> float:
    # Two tokens, though only the first one's probabilities are read: a first token that is part of
    # a UTF-8 character comes back with no probabilities until the next one completes it.
    body = {"prompt": prompt_for(text), "n_predict": 2, "n_probs": PROBS, "temperature": 0.0,
            "cache_prompt": True, "id_slot": slot}
    async with session.post(f"{base_url}/completion", json=body,
                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        response.raise_for_status()
        return ending_probability(await response.json())
