"""When a session previews a turn: language gating, item ids, and no duplicated final delta (scripted engines)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import numpy as np

from models.interfaces import Transcript
from models.whisper_partials import WhisperWindowPartials
from tests.server.session_harness import ScriptedASR, SessionHarness, utterance
from tests.server.test_partial_transcripts import BLOCK, ScriptedRecognizer

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


async def _session(make_session, **settings) -> tuple[SessionHarness, ScriptedASR]:
    harness = await make_session(partials=ScriptedRecognizer(), start=False)
    harness.session.settings = dataclasses.replace(harness.session.settings, **settings)
    return harness, harness.engines.asr


async def _turn(harness: SessionHarness, asr: ScriptedASR, transcript: Transcript) -> str:
    """One spoken turn of 0.8 s: speech start, audio in 100 ms pieces, commit, Whisper's transcript."""
    turns = harness.session.turns
    await turns.on_speech_started(0)
    item_id = harness.of_type("input_audio_buffer.speech_started")[-1]["item_id"]
    for _ in range(8):
        turns.on_turn_audio(BLOCK)
        await harness.settled()  # this block's preview decode has finished, as it would in real time
    asr.transcripts.append(transcript)
    await turns.commit(utterance(0.8), respond=False)
    await harness.until("conversation.item.done", where=lambda e: e["item"]["id"] == item_id)
    await harness.settled()
    return item_id


def _deltas(harness: SessionHarness, item_id: str) -> list[str]:
    return [e["delta"] for e in harness.sent if e["type"] == DELTA and e["item_id"] == item_id]


async def test_auto_language_previews_only_after_a_turn_heard_in_the_previews_language(make_session):
    session, asr = await _session(make_session)
    zero = await _turn(session, asr, Transcript("Zero.", "en"))
    assert _deltas(session, zero) == ["Zero."]  # the first turn's language is unknown: no preview, Whisper's text once
    first = await _turn(session, asr, Transcript("One two three.", "en"))
    assert _deltas(session, first) and "".join(_deltas(session, first)).startswith("one")
    completed = session.of_type(COMPLETED)
    assert [e["item_id"] for e in completed] == [zero, first] and completed[1]["transcript"] == "One two three."
    assert "One two three." not in _deltas(session, first)  # no second, full-text delta after the preview

    second = await _turn(session, asr, Transcript("你好", "zh"))
    assert _deltas(session, second)  # still previewed: the language was learnt from this very turn
    third = await _turn(session, asr, Transcript("hello there", "en"))
    assert _deltas(session, third) == ["hello there"]  # no preview: only Whisper's text, once
    fourth = await _turn(session, asr, Transcript("and again", "en"))
    assert _deltas(session, fourth) and "and again" not in _deltas(session, fourth)


async def test_pinned_other_language_or_transcription_off_gets_no_preview(make_session):
    for settings in ({"transcription_language": "zh"}, {"transcription": False}):
        session, asr = await _session(make_session, **settings)
        item_id = await _turn(session, asr, Transcript("你好", "zh"))
        expected = ["你好"] if settings.get("transcription", True) else []
        assert _deltas(session, item_id) == expected
        assert session.engines.partials.opened == 0  # no decoder loaded for a session that never previews


async def test_aclose_closes_the_preview_stream(make_session):
    session, asr = await _session(make_session)
    await _turn(session, asr, Transcript("one", "en"))  # teaches the session the user speaks English
    await _turn(session, asr, Transcript("two", "en"))  # previewed: opens the decoder
    await session.session.turns.on_speech_started(0)
    session.session.turns.on_turn_audio(BLOCK)
    await session.session.aclose()
    assert session.engines.partials.closed == 1
    assert not len(session.session.tasks)


class _StreamingASRRecognizer(ScriptedRecognizer):
    """A preview recogniser that is also the turn's ASR (as sherpa-onnx is): its stream's ``finish``
    is the final transcript; counts how much audio reached it at the end."""

    final_transcripts = True

    def __init__(self) -> None:
        super().__init__()
        self.finished_with: list[int] = []

    def open_stream(self):
        stream = super().open_stream()
        owner = self

        def finish(samples=None) -> Transcript:
            owner.finished_with.append(owner.samples + (0 if samples is None else len(samples)))
            words = owner.words[: owner.finished_with[-1] // 1600]
            stream.reset()
            return Transcript(" ".join(words).capitalize() + ".", "en")

        stream.finish = finish
        return stream


async def test_a_streaming_asr_gives_the_final_transcript_from_the_stream_that_made_the_previews(make_session):
    """No second decode of the turn: the whole-utterance recogniser is never asked, nor is a
    speculative decode started at the speech stop."""
    harness = await make_session(partials=_StreamingASRRecognizer(), start=False)
    harness.session.settings = dataclasses.replace(harness.session.settings, transcription_language="en")
    turns = harness.session.turns
    await turns.on_speech_started(0)
    item_id = harness.of_type("input_audio_buffer.speech_started")[-1]["item_id"]
    for _ in range(5):
        turns.on_turn_audio(BLOCK)
        await harness.settled()
    turns.on_turn_audio(BLOCK[:800])  # 50 ms not yet decoded when the turn ends
    await turns.on_speech_stopped(550, np.zeros(8800, np.float32))
    await turns.commit(utterance(0.55), respond=False)
    completed = await harness.until(COMPLETED, where=lambda e: e["item_id"] == item_id)
    assert completed["transcript"] == "One two three four five."
    assert harness.engines.partials.finished_with == [5 * 1600 + 800]  # the undecoded tail was flushed in
    assert harness.engines.asr.calls == 0  # Whisper's path never ran, not even speculatively


class _BilingualRecognizer(ScriptedRecognizer):
    """As a sherpa-onnx bilingual zh-en model: one recogniser previews both languages."""

    language = "zh"
    languages = ("zh", "en")


async def test_a_bilingual_recogniser_previews_from_the_first_turn_in_either_language(make_session):
    harness = await make_session(partials=_BilingualRecognizer(), start=False)
    first = await _turn(harness, harness.engines.asr, Transcript("你好", "zh"))
    assert _deltas(harness, first) and "你好" not in _deltas(harness, first)  # previewed, though no turn came before
    pinned_en = dataclasses.replace(harness.session.settings, transcription_language="en")
    harness.session.settings = pinned_en
    second = await _turn(harness, harness.engines.asr, Transcript("one two", "en"))
    assert _deltas(harness, second) and "one two" not in _deltas(harness, second)


async def test_mandarin_turns_are_previewed_by_the_mandarin_recogniser_and_english_ones_by_the_english(make_session):
    class Mandarin(ScriptedRecognizer):
        language = "zh"

    english, mandarin = ScriptedRecognizer(), Mandarin("一 二 三 四 五 六 七 八 九 十")
    harness = await make_session(partials=english, mandarin_partials=mandarin, start=False)
    harness.session.settings = dataclasses.replace(harness.session.settings, transcription_language="zh")
    said = await _turn(harness, harness.engines.asr, Transcript("一二三四", "zh"))
    assert "".join(_deltas(harness, said)).startswith("一") and english.opened == 0 and mandarin.opened == 1


class _AlwaysBusyWhisper:
    """Whisper whose lock is always held by a transcript: every preview decode skips."""

    def preview(self, audio, *, language):
        return None


async def test_a_mandarin_turn_decoded_at_a_pause_is_previewed_even_when_the_previews_own_decodes_skip(make_session):
    """On a loaded machine the Whisper window's decodes skip while Whisper makes the pause's
    transcript; that transcript is shown live instead (the page showed nothing before), even when
    the user went on before it was ready and it no longer stands for the turn."""
    class GatedASR(ScriptedASR):
        def __init__(self) -> None:
            super().__init__()
            self.gate, self.decoding = threading.Event(), threading.Event()

        def open_stream(self, *, language=None):
            stream, asr = super().open_stream(language=language), self
            finish = stream.finish

            def gated_finish() -> Transcript:
                asr.decoding.set()
                asr.gate.wait(5)
                return finish()

            stream.finish = gated_finish
            return stream

    asr = GatedASR()
    harness = await make_session(asr=asr, partials=ScriptedRecognizer(),
                                 mandarin_partials=WhisperWindowPartials(_AlwaysBusyWhisper()), start=False)
    harness.session.settings = dataclasses.replace(harness.session.settings, transcription_language="zh")
    turns = harness.session.turns
    await turns.on_speech_started(0)
    item_id = harness.of_type("input_audio_buffer.speech_started")[-1]["item_id"]
    for _ in range(12):
        turns.on_turn_audio(BLOCK)
        await harness.settled()
    assert _deltas(harness, item_id) == []  # the window's own decodes all skipped
    asr.transcripts.append(Transcript("近几年，不但我", "zh"))
    turns.on_speech_paused(np.zeros(12 * 1600, np.float32))
    await asyncio.get_running_loop().run_in_executor(None, asr.decoding.wait, 5)
    turns.on_pause_resumed()  # the user goes on: the decode is dropped as the turn's transcript...
    asr.gate.set()
    delta = await harness.until(DELTA, where=lambda e: e["item_id"] == item_id)
    assert delta["delta"] == "近几年不"  # ...but shown: punctuation out, the last two characters held back
    assert not harness.of_type(COMPLETED)  # shown while the user is still speaking
    asr.transcripts.append(Transcript("近几年，不但我用书给女儿压岁。", "zh"))
    await turns.commit(utterance(1.2), respond=False)
    completed = await harness.until(COMPLETED, where=lambda e: e["item_id"] == item_id)
    assert completed["transcript"] == "近几年，不但我用书给女儿压岁。"
    assert _deltas(harness, item_id) == ["近几年不"]  # the final text replaces it; no duplicate delta


async def test_a_pause_transcript_in_another_language_is_not_shown_as_a_mandarin_preview(make_session):
    harness = await make_session(partials=ScriptedRecognizer(), mandarin_partials=WhisperWindowPartials(_AlwaysBusyWhisper()),
                                 start=False)
    harness.session.settings = dataclasses.replace(harness.session.settings, transcription_language="zh")
    turns, asr = harness.session.turns, harness.engines.asr
    await turns.on_speech_started(0)
    item_id = harness.of_type("input_audio_buffer.speech_started")[-1]["item_id"]
    turns.on_turn_audio(BLOCK)
    asr.transcripts.append(Transcript("hello there my friend", "en"))
    turns.on_speech_paused(np.zeros(1600, np.float32))
    await harness.settled()
    assert asr.calls == 1 and _deltas(harness, item_id) == []
