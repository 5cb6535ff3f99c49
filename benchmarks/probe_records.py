"""What the probe measures: the per-turn and barge-in records, and how the moments it tracks become them.

:class:`~benchmarks.realtime_probe.SessionProbe` drives a session and notes, on its own
monotonic clock, when each event arrives (:class:`TurnTrack`, :class:`ResponseTrack`);
:func:`finish_turn` turns those moments into a :class:`TurnRecord` (ms from the end of the
user's speech), the rows ``bench.json`` and the soak log are made of. Kept apart from the
WebSocket client so the arithmetic can be checked on known inputs, without a server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from benchmarks.client_playback import PlaybackQueue
from benchmarks.transcript_scoring import error_rate


@dataclass
class TurnRecord:
    """One user utterance and the answer to it; times in ms from the end of the user's speech
    (the last loud frame of the recording, as the probe's microphone sent it)."""

    concurrency: int
    session: int
    turn: int
    recording: str
    language: str
    reference: str
    speech_secs: float
    status: str = "no_response"
    transcript: str | None = None
    error_rate: float | None = None
    endpointing_ms: float | None = None
    transcript_ms: float | None = None
    first_text_ms: float | None = None
    first_audio_ms: float | None = None
    response_done_ms: float | None = None
    answer_audio_ms: float = 0.0
    answer_text: str = ""
    server_ms: dict[str, float | None] = field(default_factory=dict)
    overhead_ms: float | None = None
    answer_gaps_ms: float | None = None
    first_partial_ms: float | None = None
    """First live transcript delta (before the commit), from the first voiced frame sent; None: no preview."""
    """Silence inside the answer as the client played it: its underruns after the first audio (the
    next sentence's audio came after the last one had played out). None for a turn talked over."""
    barge_in: bool = False
    commits: int = 0
    """More than 1: the server ended the turn at a pause and the user went on (the answer to the
    first part was cancelled); the transcripts are joined and the last answer is the one timed."""


@dataclass
class BargeInRecord:
    """Talking over an answer; times in ms from the start of the interrupting speech."""

    concurrency: int
    session: int
    recording: str
    interruption: str
    offset_ms: float
    speech_started_ms: float | None = None
    cancel_ms: float | None = None
    last_audio_ms: float | None = None
    audio_after_cancel_ms: float = 0.0
    client_stop_ms: float | None = None
    """Until a client that plays out what it has queued stops sounding (:mod:`benchmarks.client_playback`)."""
    client_flush_stop_ms: float | None = None
    """Until a client that drops its queue on ``speech_started`` (or the cancel) stops sounding."""
    status: str = "not_cancelled"


def engine_ms_after_turn_end(server: dict[str, float | None]) -> float | None:
    """The engines' time from the turn end to the first audio, from the server's stage marks
    (server/latency.py): recognition still running at the turn end, the thinking stage (knowledge
    and memory lookups, where the server reports ``prompt_ready``), the LLM's time to its first
    token and to the first speakable clause, and the synthesis of the first audio. What is left
    of the client's commit-to-first-audio time is orchestration: queues, pacing, the event loop
    and the network. None if a mark is missing (a server that does not report them)."""
    need = ("turn_end", "transcript_final", "llm_request", "first_llm_token", "first_tts_chunk", "first_tts_audio")
    if any(server.get(k) is None for k in need):
        return None
    s = {k: float(server[k]) for k in need}  # type: ignore[arg-type]
    thinking = 0.0  # knowledge search and memory (tingshuo's ``prompt_ready``), when reported
    if server.get("prompt_ready") is not None and float(server["prompt_ready"]) >= s["transcript_final"]:  # type: ignore[arg-type]
        thinking = float(server["prompt_ready"]) - s["transcript_final"]  # type: ignore[arg-type]
    return ((s["transcript_final"] - s["turn_end"]) + thinking + (s["first_llm_token"] - s["llm_request"])
            + (s["first_tts_chunk"] - s["first_llm_token"]) + (s["first_tts_audio"] - s["first_tts_chunk"]))


@dataclass
class ResponseTrack:
    """One response as the probe saw it arrive: when its text and audio came, and how it ended."""

    id: str
    created: float
    first_text: float | None = None
    first_audio: float | None = None
    last_audio: float | None = None
    audio_ms: float = 0.0
    text: str = ""
    done: asyncio.Future | None = None
    done_at: float | None = None
    status: str | None = None
    latency: dict[str, float | None] = field(default_factory=dict)
    audio_after_done_ms: float = 0.0
    playback: PlaybackQueue = field(default_factory=PlaybackQueue)
    done_transcript: str | None = None
    """The assistant's audio transcript as ``response.done`` reports it; None if it reports none."""


@dataclass(eq=False)  # turns are matched by identity
class TurnTrack:
    """One user turn in flight: its record, the moments its speech was sent and committed, its answer."""

    record: TurnRecord
    speech_start: float = 0.0
    voice_start: float | None = None
    """When the recording's first voiced frame was sent (its leading silence past ``speech_start``)."""
    speech_end: float | None = None
    committed_at: float | None = None
    item_id: str | None = None
    transcripts: dict[str, str] = field(default_factory=dict)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    response: ResponseTrack | None = None
    response_ready: asyncio.Event = field(default_factory=asyncio.Event)
    transcribed: asyncio.Event = field(default_factory=asyncio.Event)
    unanswered: set[str] = field(default_factory=set)
    """Its committed items no answer has followed yet."""


def score_transcript(record: TurnRecord) -> None:
    if record.transcript is not None:
        record.error_rate = round(error_rate([record.reference], [record.transcript], record.language), 4)


def finish_turn(turn: TurnTrack) -> None:
    """Fill in the turn's record from what was tracked: error rate, client-side latencies from the
    end of the user's speech, the server's stage marks and the orchestration overhead."""
    record, response = turn.record, turn.response
    score_transcript(record)
    if response is None or turn.speech_end is None:
        return
    end = turn.speech_end
    record.status = response.status or record.status
    record.first_text_ms = None if response.first_text is None else (response.first_text - end) * 1000
    record.first_audio_ms = None if response.first_audio is None else (response.first_audio - end) * 1000
    record.response_done_ms = None if response.done_at is None else (response.done_at - end) * 1000
    record.answer_audio_ms = round(response.audio_ms, 1)
    record.answer_text = response.text
    record.server_ms = dict(response.latency)
    engines = engine_ms_after_turn_end(record.server_ms)
    if engines is not None and response.first_audio is not None and turn.committed_at is not None:
        record.overhead_ms = (response.first_audio - turn.committed_at) * 1000 - engines
