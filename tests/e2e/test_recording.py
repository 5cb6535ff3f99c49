"""Recording for training (``data.record``) end to end: ``tingshuo serve`` with the real embedded
models, real speech over a real WebSocket, and the store read back as ``tingshuo data`` reads it.

One server records (``text`` by default, ``audio`` and ``off`` through personas); two more are
started for a test each: one whose store cannot be written, one that records nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import soundfile as sf

from server.latency import STAGES
from tests.e2e.browser import browser_page, keep_screenshot, microphone_wav, require_chromium, wait_for_stats
from tests.e2e.conftest import API_KEY, start_server
from tests.e2e.realtime_client import RealtimeTestClient, load_speech, silence
from tests.e2e.scoring import error_rate
from thinking.training_data.data_store import TrainingDataStore
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation

pytestmark = pytest.mark.e2e

QUESTION = "en/en_deepspeech_new_home.wav"
QUESTION_TEXT = "We must find a new home in the stars."
INTERRUPTION = "en/en_harvard_spk1_snt5.wav"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
INSTRUCTIONS = "You are a friendly voice assistant. Reply in one short sentence of plain words."
PERSONAS = {
    "rec_audio": f'id = "rec_audio"\nversion = 1\nname = "Recorder"\nlanguage = "en"\nrecord = "audio"\n'
                 f'instructions = "{INSTRUCTIONS}"\n',
    "rec_off": f'id = "rec_off"\nversion = 1\nname = "Discreet"\nlanguage = "en"\nrecord = "off"\n'
               f'instructions = "{INSTRUCTIONS}"\n',
}
STORED_TIMEOUT_S = 30


@dataclass(frozen=True)
class Server:
    url: str
    data: Path
    log: Path


@pytest.fixture(scope="module")
def recording_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recording")
    (tmp / "personas").mkdir()
    for name, body in PERSONAS.items():
        (tmp / "personas" / f"{name}.toml").write_text(body)
    # A conversation past retention (30 days): the server's writer deletes it when it starts.
    with TrainingDataStore(tmp / "data") as store:
        store.record_turn(StoredConversation(id="sess_expired", source="recorded", started_at=time.time() - 40 * 86400),
                          RecordedTurn(item_id="item_expired", user_text="old", answer_generated="old",
                                       answer_heard="old"))
    proc, url = start_server(tmp / "server.log", TINGSHUO_SERVER_API_KEY=API_KEY, TINGSHUO_DATA_RECORD="text",
                             TINGSHUO_DATA_DIR=str(tmp / "data"), TINGSHUO_DATA_RETENTION_DAYS="30",
                             TINGSHUO_ASSISTANT_PERSONAS_DIR=str(tmp / "personas"), TINGSHUO_ASSISTANT_SEED="1")
    yield Server(url=url, data=tmp / "data", log=tmp / "server.log")
    proc.terminate()
    proc.wait(30)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def _open(http: aiohttp.ClientSession, url: str, query: str = "") -> tuple[RealtimeTestClient, str]:
    ws = await http.ws_connect(url.replace("http", "ws") + "/v1/realtime" + query, max_msg_size=0, headers=AUTH)
    client = RealtimeTestClient(ws=ws)
    client.start()
    created = await client.wait_for("session.created", timeout=10)
    return client, created["session"]["id"]


async def _type(client: RealtimeTestClient, text: str, **response) -> tuple[str, dict]:
    """A typed user turn and its answer: (the user item's id, the response)."""
    count = len(client.of_type("response.done")) + 1
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    def user_item(event: dict) -> bool:
        return event["item"].get("role") == "user"

    users = len([e for e in client.of_type("conversation.item.added") if user_item(e)])
    added = await client.wait_for("conversation.item.added", count=users + 1, where=user_item)
    await client.send({"type": "response.create", **({"response": response} if response else {})})
    return added["item"]["id"], (await client.wait_for("response.done", count=count, timeout=120))["response"]


async def _speak(client: RealtimeTestClient, clip: str) -> tuple[dict, dict]:
    """A spoken turn, hands-free: (its transcription.completed, the answer's response)."""
    count = len(client.of_type("response.done")) + 1
    await client.send_audio(load_speech(clip), realtime_factor=0.25)
    await client.send_audio(silence(2.5), realtime_factor=0.25)
    user = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60,
                                 count=len(client.of_type("conversation.item.input_audio_transcription.completed")) + 1)
    return user, (await client.wait_for("response.done", count=count, timeout=120))["response"]


def _said(response: dict) -> str:
    content = response["output"][0]["content"][0]
    return content.get("transcript") or content.get("text") or ""


def _words(text: str) -> str:
    return " ".join(text.split())


def _read(data: Path, conversation_id: str) -> StoredConversation | None:
    path = data / "data.sqlite"
    if not path.is_file():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:  # never creates the store
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            return None
    with TrainingDataStore(data) as store:
        return next((c for c in store.conversations() if c.id == conversation_id), None)


async def stored(data: Path, conversation_id: str, turns: int) -> StoredConversation:
    """The conversation once the recorder's writer has stored ``turns`` of it."""
    deadline = time.monotonic() + STORED_TIMEOUT_S
    while True:
        conversation = await asyncio.to_thread(_read, data, conversation_id)
        if conversation is not None and len(conversation.turns) >= turns:
            return conversation
        if time.monotonic() > deadline:
            raise AssertionError(f"{conversation_id}: {turns} turns not stored in {STORED_TIMEOUT_S} s: {conversation}")
        await asyncio.sleep(0.1)


async def _recording(http: aiohttp.ClientSession, url: str, **query: str) -> str:
    async with http.get(url + "/v1/data/recording?" + urlencode(query)) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["record"]


def _metric(url: str, outcome: str) -> float:
    body = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    line = next((l for l in body.splitlines() if l.startswith(f'tingshuo_recorded_turns_total{{outcome="{outcome}"}}')),
                None)
    return float(line.split()[-1]) if line else 0.0


async def test_text_mode_keeps_each_answered_turn_and_a_correction_replaces_the_transcript(recording_server, http):
    url, data = recording_server.url, recording_server.data
    client, session_id = await _open(http, url)
    assert await _recording(http, url, session=session_id) == "text"
    user, spoken = await _speak(client, QUESTION)
    typed_id, typed = await _type(client, "Say hello in one word.", output_modalities=["text"])
    assert spoken["status"] == typed["status"] == "completed"
    conversation = await stored(data, session_id, 2)
    first, second = conversation.turns
    assert first.item_id == user["item_id"] and first.user_text == user["transcript"]
    assert error_rate([QUESTION_TEXT], [first.user_text], "en") <= 0.2, first.user_text
    assert _words(first.answer_generated) == _words(first.answer_heard) == _words(_said(spoken))
    assert first.language == "en" and not first.interrupted and first.failure == ""
    assert first.latency_ms == {k: v for k, v in spoken["latency"].items() if v is not None}
    assert set(STAGES) <= set(first.latency_ms)
    assert first.user_audio == first.assistant_audio == ""  # text: no audio kept
    assert not (data / "audio" / session_id).exists()
    assert (second.item_id, second.user_text, second.answer_heard) == (typed_id, "Say hello in one word.", _said(typed))
    assert conversation.persona_id == "" and conversation.user_id == "" and conversation.source == "recorded"
    assert conversation.instructions == client.of_type("session.created")[0]["session"]["instructions"]
    assert client.of_type("error") == []
    await client.close()

    corrections = url + f"/v1/data/items/{first.item_id}/transcript"
    async with http.post(corrections, json={"text": QUESTION_TEXT}) as anonymous:
        assert anonymous.status == 401
    async with http.post(corrections, json={"text": "  "}, headers=AUTH) as empty:
        assert empty.status == 400
    async with http.post(url + "/v1/data/items/item_nope/transcript", json={"text": "x"}, headers=AUTH) as unknown:
        assert unknown.status == 404
    async with http.post(corrections, json={"text": QUESTION_TEXT}, headers=AUTH) as corrected:
        assert corrected.status == 200, await corrected.text()
    fixed = (await asyncio.to_thread(_read, data, session_id)).turns[0]
    assert fixed.corrected_text == fixed.user_words == QUESTION_TEXT and fixed.user_text == user["transcript"]


async def test_audio_mode_keeps_the_users_16khz_utterance_and_the_answers_audio(recording_server, http):
    url, data = recording_server.url, recording_server.data
    client, session_id = await _open(http, url)
    await client.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "rec_audio"}}})
    await client.wait_for("session.updated")
    assert await _recording(http, url, session=session_id) == "audio"
    user, answer = await _speak(client, QUESTION)
    assert answer["status"] == "completed"
    conversation = await stored(data, session_id, 1)
    await client.close()
    (turn,) = conversation.turns
    assert (conversation.persona_id, conversation.persona_version) == ("rec_audio", "1")
    assert conversation.instructions.startswith(INSTRUCTIONS)
    utterance = sf.info(data / turn.user_audio)
    assert (utterance.samplerate, utterance.channels) == (16_000, 1)
    # Exactly the utterance Whisper heard (its length is in the transcription's usage, to the ms): the
    # clip's speech, trimmed by the VAD (measured 3.04 s of the 3.59 s clip, whose edges are quiet).
    heard_s = user["usage"]["seconds"]
    assert abs(utterance.frames / 16_000 - heard_s) <= 0.001, (utterance.frames, heard_s)
    clip_s = len(load_speech(QUESTION)) / 24_000
    assert 0.75 * clip_s <= utterance.duration <= clip_s + 3.0, (utterance.duration, clip_s)
    spoken = sf.info(data / turn.assistant_audio)
    assert spoken.samplerate == 24_000 and spoken.frames == len(client.response_audio(answer["id"]))


async def test_a_barge_in_is_kept_as_interrupted_with_what_was_heard(recording_server, http):
    url, data = recording_server.url, recording_server.data
    client, session_id = await _open(http, url)
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Tell me a long story about a dragon who learns to bake bread. "
                                                   "Use at least ten sentences."}]}})
    await client.send({"type": "response.create", "response": {"max_output_tokens": 400}})
    first_id = (await client.wait_for("response.created"))["response"]["id"]
    # A second of the answer has been sent (40 ms frames): the user talks over it, at microphone pace.
    await client.wait_for("response.output_audio.delta", count=25, timeout=90)
    await client.send_audio(load_speech(INTERRUPTION), realtime_factor=1.0)
    await client.send_audio(silence(2.0), realtime_factor=1.0)
    cut = (await client.wait_for("response.done", where=lambda e: e["response"]["id"] == first_id, timeout=60))
    said = await client.wait_for("conversation.item.input_audio_transcription.completed", timeout=60)
    await client.wait_for("response.done", count=2, timeout=120)
    conversation = await stored(data, session_id, 2)
    await client.close()
    story, interruption = conversation.turns
    assert story.interrupted and story.user_text.startswith("Tell me a long story")
    assert story.answer_heard and story.answer_generated.startswith(story.answer_heard)
    assert len(story.answer_heard) < len(story.answer_generated)
    assert _words(story.answer_heard) == _words(_said(cut["response"]))
    assert interruption.item_id == said["item_id"] and interruption.user_text == said["transcript"]
    assert not interruption.interrupted


async def test_erasing_a_user_erases_their_recordings_and_old_ones_expire(recording_server, http):
    url, data = recording_server.url, recording_server.data
    client, session_id = await _open(http, url, "?user=rec-visitor-1")
    await client.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "rec_audio"}}})
    await client.wait_for("session.updated")
    await _type(client, "Say hello in one word.")
    conversation = await stored(data, session_id, 1)
    await client.close()
    assert conversation.user_id == "rec-visitor-1" and conversation.turns[0].assistant_audio
    assert (data / conversation.turns[0].assistant_audio).is_file()
    async with http.delete(url + "/v1/users/rec-visitor-1/memory", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        erased = await response.json()
    assert erased["recordings"] == {"conversations": 1, "turns": 1, "audio_files": 1}
    assert await asyncio.to_thread(_read, data, session_id) is None
    assert not (data / "audio" / session_id).exists()
    # The conversation seeded 40 days back was deleted by the retention purge at start.
    assert await asyncio.to_thread(_read, data, "sess_expired") is None


async def test_a_store_that_cannot_be_written_never_costs_a_turn(tmp_path, http):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    proc, url = await asyncio.to_thread(start_server, tmp_path / "server.log", TINGSHUO_SERVER_API_KEY=API_KEY,
                                        TINGSHUO_DATA_RECORD="audio", TINGSHUO_DATA_DIR=str(blocker / "data"))
    try:
        client, _ = await _open(http, url)
        user, spoken = await _speak(client, QUESTION)
        _, typed = await _type(client, "Say hello in one word.", output_modalities=["text"])
        assert spoken["status"] == typed["status"] == "completed" and _said(typed).strip()
        assert error_rate([QUESTION_TEXT], [user["transcript"]], "en") <= 0.2
        assert client.of_type("error") == []
        deadline = time.monotonic() + STORED_TIMEOUT_S
        while (failed := await asyncio.to_thread(_metric, url, "failed")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert failed == 2 and await asyncio.to_thread(_metric, url, "written") == 0
        await client.close()
    finally:
        proc.terminate()
        proc.wait(30)
    assert "was not kept" in (tmp_path / "server.log").read_text()
    assert blocker.read_text() == "a regular file"


async def test_off_keeps_nothing_and_makes_no_store(tmp_path, http):
    data = tmp_path / "data"
    proc, url = await asyncio.to_thread(start_server, tmp_path / "server.log", TINGSHUO_SERVER_API_KEY=API_KEY,
                                        TINGSHUO_DATA_DIR=str(data))
    try:
        client, session_id = await _open(http, url)
        assert await _recording(http, url, session=session_id) == "off"
        _, spoken = await _speak(client, QUESTION)
        _, typed = await _type(client, "Say hello in one word.", output_modalities=["text"])
        assert spoken["status"] == typed["status"] == "completed"
        await client.close()
        async with http.post(url + "/v1/data/items/item_1/transcript", json={"text": "x"}, headers=AUTH) as response:
            assert response.status == 404  # no store: nothing to correct, and none is made
        async with http.delete(url + "/v1/users/nobody/memory", headers=AUTH) as response:
            assert (await response.json())["recordings"]["conversations"] == 0
        assert await asyncio.to_thread(_metric, url, "written") == 0
    finally:
        proc.terminate()
        proc.wait(30)
    assert not data.exists()


async def test_a_recorded_session_exports_to_files_the_training_tools_load(recording_server, http, tmp_path):
    """The issue's first "done when": a real recorded session, spoken and typed, exported with
    ``tingshuo data export`` and checked against each tool's rules (the same checks as the export
    tests on hand-built stores), every example within the cutoff through Qwen's own template."""
    from server.cli import main as tingshuo
    from tests.thinking.test_dataset_exports import (
        check_openai_example, check_sharegpt, kaldi_lines, load_llama_factory, tools_of)

    url, data = recording_server.url, recording_server.data
    client, session_id = await _open(http, url)
    await client.send({"type": "session.update", "session": {"type": "realtime", "prompt": {"id": "rec_audio"}}})
    await client.wait_for("session.updated")
    user, answer = await _speak(client, QUESTION)
    assert answer["status"] == "completed"
    typed_id, typed = await _type(client, "And how far away are the stars?")
    assert typed["status"] == "completed"
    conversation = await stored(data, session_id, 2)
    await client.close()
    spoken_turn = conversation.turns[0]
    corrected = QUESTION_TEXT
    assert tingshuo(["--set", f"data.dir={data}", "data", "correct", spoken_turn.item_id, corrected]) == 0

    cutoff = 512
    for fmt in ("llama-factory", "openai", "asr"):
        assert tingshuo(["--set", f"data.dir={data}", "data", "export", "--format", fmt,
                         "--out", str(tmp_path / fmt), "--cutoff-len", str(cutoff)]) == 0, fmt

    from models.chat_template_tokens import ChatTemplateTokenizer
    from tests.thinking.test_dataset_exports import GGUF

    qwen = ChatTemplateTokenizer.from_gguf(GGUF)
    records = load_llama_factory(tmp_path / "llama-factory")["tingshuo_train"]
    for record in records:
        assert qwen.count(check_sharegpt(record), tools_of(record)) <= cutoff
    ours = [r for r in records if any(m["value"] == "And how far away are the stars?" for m in r["conversations"])]
    assert len(ours) == 1, "the session is one example"
    (record,) = ours
    assert record["conversations"][0]["value"] == corrected, "the corrected transcript, not Whisper's"
    assert record["system"].startswith(INSTRUCTIONS)
    assert [m["from"] for m in record["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert record["conversations"][2]["value"] == "And how far away are the stars?"
    assert _words(record["conversations"][3]["value"]) == _words(_said(typed))

    examples = [json.loads(line) for line in (tmp_path / "openai" / "train.jsonl").read_text().splitlines()]
    for example in examples:
        check_openai_example(example)
    (ours_openai,) = [e for e in examples if any(m.get("content") == "And how far away are the stars?"
                                                 for m in e["messages"])]
    assert [m["role"] for m in ours_openai["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert ours_openai["messages"][1]["content"] == corrected

    kaldi = tmp_path / "asr" / "train"
    text = dict(kaldi_lines(kaldi / "text"))
    wav_scp = dict(kaldi_lines(kaldi / "wav.scp"))
    ours_asr = [u for u, t in text.items() if t == corrected and spoken_turn.item_id in u]
    assert len(ours_asr) == 1 and Path(wav_scp[ours_asr[0]]).is_file()
    assert error_rate([QUESTION_TEXT], [user["transcript"]], "en") <= 0.2  # what Whisper heard, before the correction


# -- the notice on the page and the kiosk ---------------------------------------------------

@pytest.fixture(scope="module")
def playwright():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _page(base: str, path: str = "/", **params: str) -> str:
    return f"{base}{path}?{urlencode({'token': API_KEY, **params})}"


NOTICE_EN = "● Recording — this conversation is kept for training"
NOTICE_ZH = "● 正在记录：本次对话将用于训练"


def test_the_page_and_the_kiosk_say_when_the_conversation_is_recorded(playwright, recording_server, tmp_path):
    url = recording_server.url
    wav = microphone_wav(tmp_path / "quiet.wav", 60)
    with browser_page(playwright, wav) as page:
        page.goto(_page(url, "/", lang="en", language="en", settings=""))
        notice = page.locator("tingshuo-assistant >> .shell > .recording")
        notice.wait_for(state="visible", timeout=10_000)  # before the conversation starts
        assert notice.inner_text().splitlines() == [NOTICE_EN, NOTICE_ZH]
        page.click("tingshuo-assistant >> .talk")
        wait_for_stats(page, "s.state === 'listening' && s.events['session.created'] >= 1", timeout_s=30)
        keep_screenshot(page, "recording-notice.png", tmp_path)
        # A persona that records nothing, picked mid-session: the notice goes; one that keeps audio: it says so.
        for persona, visible in (("rec_off", False), ("rec_audio", True)):
            updates = page.evaluate("document.querySelector('tingshuo-assistant').stats.events['session.updated'] || 0")
            page.click("tingshuo-assistant >> .gear")
            page.wait_for_function("() => document.querySelector('tingshuo-assistant').shadowRoot"
                                   ".querySelector('select[name=persona]').options.length >= 3", timeout=10_000)
            page.select_option("tingshuo-assistant >> select[name=persona]", persona)
            with page.expect_response(lambda r: "/v1/data/recording?session=" in r.url, timeout=10_000):
                page.click("tingshuo-assistant >> .settings button[type=submit]")
            wait_for_stats(page, f"(s.events['session.updated'] || 0) > {updates}", timeout_s=10)
            notice.wait_for(state="visible" if visible else "hidden", timeout=10_000)
        assert "audio" in notice.inner_text()
    with browser_page(playwright, None, viewport={"width": 1024, "height": 768}) as page:
        page.goto(_page(url, "/kiosk", lang="zh"))
        idle_notice = page.locator("tingshuo-assistant >> .idle .recording")
        idle_notice.wait_for(state="visible", timeout=10_000)  # on the idle screen, before anyone speaks
        assert idle_notice.inner_text().splitlines() == [NOTICE_ZH, NOTICE_EN]
        keep_screenshot(page, "kiosk-recording-notice.png", tmp_path)
        page.goto(_page(url, "/kiosk", lang="zh", persona="rec_off"))
        # The server's answer is in (the element marks the notice with it), and it says off.
        page.locator('tingshuo-assistant >> .idle .recording[data-record="off"]').wait_for(state="attached",
                                                                                          timeout=10_000)
        assert not idle_notice.is_visible()
        assert not page.locator("tingshuo-assistant >> .shell > .recording").is_visible()

