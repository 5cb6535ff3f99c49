"""The web page, the kiosk and the embeddable widget in a real browser against the real server.

Debian's Chromium hears a WAV of real human speech through its fake microphone device;
everything from the AudioWorklets to the embedded models is the path a user runs.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from tests.e2e.browser import (
    LEAD_IN_S, PrefixProxy, browser_page, dump, keep_screenshot, microphone_wav, on_demand_microphone,
    require_chromium, shadow_text, speak, stats, turns, wait_for_shadow_text, wait_for_stats,
)
from tests.e2e.conftest import API_KEY
from tests.e2e.scoring import error_rate

pytestmark = pytest.mark.e2e

QUESTION = "en/en_deepspeech_new_home.wav"
QUESTION_TEXT = "We must find a new home in the stars."
INTERRUPTION = "en/en_harvard_spk1_snt1.wav"
MANDARIN = "zh/zh_funasr_asr_example.wav"
MANDARIN_TEXT = "欢迎大家来体验达摩院推出的语音识别模型"
TURN_TIMEOUT_S = 150
RATE = 24_000


@pytest.fixture(scope="module")
def playwright():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def page_url(base: str, path: str = "/", **params: str) -> str:
    return f"{base}{path}?{urlencode({'token': API_KEY, **params})}"


def in_order(seen: list[str], expected: list[str]) -> bool:
    it = iter(seen)
    return all(state in it for state in expected)


def start(page) -> None:
    page.click("tingshuo-assistant >> .talk")


def test_hands_free_conversation_on_the_talk_page(playwright, server_url, tmp_path):
    wav = microphone_wav(tmp_path / "mic.wav", LEAD_IN_S, QUESTION, 30)
    with browser_page(playwright, wav) as page:
        page.goto(page_url(server_url, "/", lang="en", language="en"))
        assert shadow_text(page, ".talk") == "Start talking"
        start(page)
        s = wait_for_stats(page, "s.latencies.length >= 1 && s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
        shown = turns(page)
        user = [t for t in shown if t["role"] == "user"]
        answer = [t for t in shown if t["role"] == "assistant"]
        assert len(user) == 1 and not user[0]["partial"], dump(shown)
        assert error_rate([QUESTION_TEXT], [user[0]["text"]], "en") <= 0.2, user[0]["text"]
        assert len(answer) == 1 and len(answer[0]["text"].split()) >= 3 and not answer[0]["interrupted"], dump(shown)
        # The playback worklet rendered the whole answer, not just received it.
        assert s["receivedSamples"] >= RATE, dump(s)
        assert s["renderedSamples"] >= 0.95 * s["receivedSamples"], dump(s)
        assert in_order(s["states"], ["connecting", "listening", "hearing", "thinking", "speaking", "listening"]), s["states"]
        latency = s["latencies"][0]
        assert latency["heardMs"] > 0, latency
        assert all(v is not None and v >= 0 for v in latency["stages"].values()), latency
        readout = shadow_text(page, ".latency")
        assert readout.startswith("heard after") and "first token" in readout, readout
        assert s["events"].get("input_audio_buffer.speech_started") == 1, s["events"]
        keep_screenshot(page, "talk-page.png", tmp_path)
        page.set_viewport_size({"width": 390, "height": 760})
        keep_screenshot(page, "talk-page-phone.png", tmp_path)


def test_barge_in_stops_playback_and_truncates(playwright, server_url, tmp_path):
    # The user talks over the answer while it plays: the server pauses it at the onset, the page
    # runs dry, and on the confirmed speech_started it flushes and tells the server how much was heard.
    with browser_page(playwright, None) as page:
        on_demand_microphone(page, {"question": QUESTION, "interruption": INTERRUPTION})
        page.goto(page_url(server_url, "/", lang="en", language="en",
                           instructions="Answer in four or five full sentences."))
        start(page)
        wait_for_stats(page, "s.state === 'listening'", timeout_s=20)
        speak(page, "question")
        s = wait_for_stats(page, "s.state === 'speaking' && s.renderedSamples > 0", timeout_s=TURN_TIMEOUT_S)
        speak(page, "interruption")
        s = wait_for_stats(page, "s.flushes.some(f => f.playedMs > 0) && s.events['conversation.item.truncated'] >= 1",
                           timeout_s=30)
        flush = next(f for f in s["flushes"] if f["playedMs"] > 0)
        truncate = next(t for t in s["truncates"] if t["itemId"] == flush["itemId"])
        assert truncate["audioEndMs"] == int(flush["playedMs"]), dump(s)
        # The server paused the answer at the onset of the interruption, before it confirmed it: by
        # the time speech_started arrives the page has played what it held (at most a frame in flight).
        assert flush["droppedMs"] <= 80, dump(s)
        assert "interrupted" in s["states"], s["states"]
        interrupted = [t for t in turns(page) if t["interrupted"]]
        assert interrupted and interrupted[0]["role"] == "assistant", dump(turns(page))
        # The interruption is a new turn, answered in its turn (the cancelled answer reported the first latency).
        wait_for_stats(page, "s.latencies.length >= 2 && s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
        # Nothing of the interrupted answer played after the flush, though its frames may have
        # arrived, and though the next answer has played since.
        after = page.evaluate("(id) => document.querySelector('tingshuo-assistant').session.audio.played(id)",
                              flush["itemId"])
        assert after["itemId"] == flush["itemId"] and after["playedMs"] == flush["playedMs"], (after, flush)
        said = [t for t in turns(page) if t["role"] == "user"]
        assert len(said) == 2 and not said[1]["partial"], dump(said)
        assert error_rate(["The child almost hurt the small dog."], [said[1]["text"]], "en") <= 0.25, dump(said)


SAY_WHILE_HELD_JS = """async (name) => {
  const session = document.querySelector('tingshuo-assistant').session;
  const fromMs = session.sentMs;
  const seconds = await window.__speak('/__microphone__/' + name);
  return { fromMs, untilMs: fromMs + seconds * 1000 };
}"""
"""Says a recording into the on-demand microphone; returns the span of sent audio that must hold it:
from what the page had sent when the recording started to that plus its length."""
RELEASE_AFTER_MS = 800
"""Audio sent after the recording's end before the key is let go (its last words, and then some)."""


def test_push_to_talk_in_chinese_through_the_iframe_page(playwright, server_url, tmp_path):
    # The recording starts once the key is held, and the key is let go once the page has sent the
    # audio that holds it: counted in audio sent, not in seconds on the test's clock.
    with browser_page(playwright, None) as page:
        on_demand_microphone(page, {"mandarin": MANDARIN})
        page.goto(page_url(server_url, "/embed", mode="push-to-talk", lang="zh", language="zh"))
        assert shadow_text(page, ".talk") == "开始对话"
        start(page)
        wait_for_stats(page, "s.state === 'idle' && s.states.includes('connecting')", timeout_s=20)
        wait_for_shadow_text(page, ".talk", "按住说话（空格键）")
        page.keyboard.down("Space")
        wait_for_shadow_text(page, ".status", "正在听你说")
        span = page.evaluate(SAY_WHILE_HELD_JS, "mandarin")
        page.wait_for_function("(ms) => document.querySelector('tingshuo-assistant').session.sentMs >= ms",
                               arg=span["untilMs"] + RELEASE_AFTER_MS, timeout=30_000, polling=50)
        page.keyboard.up("Space")
        s = wait_for_stats(page, "s.latencies.length >= 1 && s.state === 'idle' && s.receivedSamples > 0",
                           timeout_s=TURN_TIMEOUT_S)
        shown = turns(page)
        user = [t for t in shown if t["role"] == "user"]
        assert len(user) == 1 and error_rate([MANDARIN_TEXT], [user[0]["text"]], "zh") <= 0.35, dump(shown)
        assert any(t["role"] == "assistant" and t["text"].strip() for t in shown), dump(shown)
        assert "input_audio_buffer.speech_started" not in s["events"], "push-to-talk turns off server VAD"
        keep_screenshot(page, "push-to-talk-zh.png", tmp_path)
        assert s["renderedSamples"] >= 0.95 * s["receivedSamples"], dump(s)


def test_kiosk_behind_a_path_prefix_reconnects_and_resets_when_idle(playwright, server_url, tmp_path):
    proxy = PrefixProxy(upstream=server_url).start()
    wav = microphone_wav(tmp_path / "mic.wav", LEAD_IN_S, QUESTION, 30)
    try:
        with browser_page(playwright, wav, viewport={"width": 1024, "height": 768}) as page:
            page.goto(page_url(proxy.url, "/assistant/kiosk", lang="en", language="en", **{"idle-reset": "10"}))
            assert page.locator("tingshuo-assistant >> .idle").is_visible()
            keep_screenshot(page, "kiosk-idle.png", tmp_path)
            page.click("tingshuo-assistant >> .idle")  # tap to wake
            s = wait_for_stats(page, "s.latencies.length >= 1 && s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
            assert proxy.connections == 1
            assert any(t["role"] == "assistant" and t["text"].strip() for t in turns(page))
            keep_screenshot(page, "kiosk.png", tmp_path)
            assert proxy.drop_connections() == 1
            s = wait_for_stats(page, "s.state === 'listening' && s.notices.includes('reconnected')", timeout_s=30)
            assert in_order(s["states"], ["speaking", "listening", "disconnected", "listening"]), s["states"]
            assert "dropped" in s["notices"] and proxy.connections == 2, dump(s)
            # Nobody talks: after idle-reset seconds the next visitor gets a fresh screen.
            page.wait_for_function("document.querySelector('tingshuo-assistant').session === null", timeout=30_000)
            assert page.locator("tingshuo-assistant >> .idle").is_visible()
            assert turns(page) == []
            assert len(proxy.websockets) == 0
    finally:
        proxy.stop()


def test_widget_in_a_host_page_of_another_origin(playwright, server_url, tmp_path):
    ws_url = server_url.replace("http", "ws") + "/v1/realtime"
    host_page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Host</title></head><body>
      <h1>Museum entrance</h1>
      <div style="width: 420px; height: 520px">
        <tingshuo-assistant server="{ws_url}" token="{API_KEY}" lang="en" language="en"></tingshuo-assistant>
      </div>
      <iframe id="frame" src="{page_url(server_url, '/embed', lang='zh', mode='push-to-talk')}"
              allow="microphone; autoplay" style="width: 360px; height: 300px"></iframe>
      <script>window.hostStates = [];
        document.addEventListener("tingshuo-state", (e) => window.hostStates.push(e.detail.state));</script>
      <script type="module" src="{server_url}/static/tingshuo-assistant.js"></script>
    </body></html>"""
    proxy = PrefixProxy(upstream=server_url, host_page=host_page).start()
    wav = microphone_wav(tmp_path / "mic.wav", LEAD_IN_S, QUESTION, 30)
    try:
        with browser_page(playwright, wav) as page:
            page.goto(proxy.url + "/host.html")
            frame = page.frame_locator("#frame")
            assert frame.locator("tingshuo-assistant >> .talk").inner_text() == "开始对话"
            start(page)
            s = wait_for_stats(page, "s.latencies.length >= 1 && s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
            user = [t for t in turns(page) if t["role"] == "user"]
            assert user and error_rate([QUESTION_TEXT], [user[0]["text"]], "en") <= 0.2, dump(turns(page))
            assert s["renderedSamples"] > 0
            host_states = page.evaluate("window.hostStates")
            assert "speaking" in host_states and "listening" in host_states, host_states
    finally:
        proxy.stop()


def test_refused_token_is_explained_and_not_retried(playwright, server_url, tmp_path):
    with browser_page(playwright, None) as page:
        page.goto(f"{server_url}/?token=wrong-key&lang=en")
        start(page)
        s = wait_for_stats(page, "s.notices.includes('refused')", timeout_s=20)
        assert shadow_text(page, ".notice") == "The server refused the access token."
        time.sleep(2.0)
        s = stats(page)
        assert s["state"] == "error" and s["states"].count("connecting") == 1, dump(s)


def test_denied_microphone_is_explained(playwright, server_url, tmp_path):
    with browser_page(playwright, None, fake_ui=False) as page:
        page.goto(page_url(server_url, "/", lang="zh"))
        start(page)
        page.wait_for_function("document.querySelector('tingshuo-assistant').shadowRoot"
                               ".querySelector('.notice').dataset.key.startsWith('mic.')", timeout=20_000)
        key = page.evaluate("document.querySelector('tingshuo-assistant').shadowRoot.querySelector('.notice').dataset.key")
        assert key in ("mic.denied", "mic.absent"), key
        assert "麦克风" in shadow_text(page, ".notice")
        assert shadow_text(page, ".talk") == "开始对话"  # still offers to try again


def test_a_persona_from_the_page_url_greets_and_the_settings_menu_switches_it(playwright, server_url, tmp_path):
    wav = microphone_wav(tmp_path / "quiet.wav", 60)
    with browser_page(playwright, wav) as page:
        page.goto(page_url(server_url, "/", lang="zh", persona="library_guide_zh", settings=""))
        start(page)
        wait_for_stats(page, "s.receivedSamples > 0 && s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
        shown = turns(page)
        assert [t["role"] for t in shown] == ["assistant"], dump(shown)
        assert shown[0]["text"].startswith("您好，我是城东图书馆的小听"), dump(shown)
        page.click("tingshuo-assistant >> .gear")
        page.wait_for_function("() => document.querySelector('tingshuo-assistant').shadowRoot"
                               ".querySelector('select[name=persona]').options.length >= 3", timeout=10_000)
        page.select_option("tingshuo-assistant >> select[name=persona]", "museum_guide")
        page.click("tingshuo-assistant >> .settings button[type=submit]")
        page.wait_for_function("() => [...document.querySelector('tingshuo-assistant').shadowRoot"
                               ".querySelectorAll('.turn .text')].some(t => t.textContent.startsWith(\"Hello, I'm Ada\"))",
                               timeout=TURN_TIMEOUT_S * 1000)
        s = wait_for_stats(page, "s.state === 'listening'", timeout_s=TURN_TIMEOUT_S)
        assert s["renderedSamples"] >= 0.95 * s["receivedSamples"] > RATE, dump(s)
        keep_screenshot(page, "persona-greeting.png", tmp_path)


MANDARIN = "zh/zh_masr_test.wav"
MANDARIN_TEXT = "近几年不但我用书给女儿压岁也劝说亲朋不要给女儿压岁钱而改送压岁书"
WATCH_PREVIEWS_JS = """() => {
  const el = document.querySelector('tingshuo-assistant');
  window.__previews = [];
  new MutationObserver(() => {
    for (const li of el.shadowRoot.querySelectorAll('.turn.user.partial')) {
      const text = li.querySelector('.text').textContent;
      const seen = window.__previews.map(p => p.text);
      if (text && !seen.includes(text))
        window.__previews.push({text, stopped: el.session.stats.events['input_audio_buffer.speech_stopped'] || 0});
    }
  }).observe(el.shadowRoot, {subtree: true, childList: true, characterData: true});
}"""


def test_mandarin_words_show_while_the_user_speaks(playwright, server_url, tmp_path):
    with browser_page(playwright, None) as page:
        on_demand_microphone(page, {"mandarin": MANDARIN})
        page.goto(page_url(server_url, "/", lang="zh", language="zh"))
        start(page)
        wait_for_stats(page, "s.state === 'listening'", timeout_s=20)
        page.evaluate(WATCH_PREVIEWS_JS)
        speak(page, "mandarin")
        wait_for_stats(page, "s.events['conversation.item.input_audio_transcription.completed'] >= 1",
                       timeout_s=TURN_TIMEOUT_S)
        previews = page.evaluate("window.__previews")
        live = [p["text"] for p in previews if p["stopped"] == 0 and p["text"] != "…"]  # "…": listening
        print("shown while speaking:", live)
        assert live and any("\u4e00" <= ch <= "\u9fff" for ch in live[-1]), previews
        assert all(a in b for a, b in zip(live, live[1:])), live  # each one grows the last
        said = [t for t in turns(page) if t["role"] == "user"]
        assert said and not said[0]["partial"], dump(said)
        assert error_rate([MANDARIN_TEXT], [said[0]["text"]], "zh") <= 0.25, said
