// <tingshuo-assistant>: the whole talk-to-it interface as one custom element.
// The talk page, the kiosk and any host page use it through one module script tag:
//   <script type="module" src="https://host/static/tingshuo-assistant.js"></script>
//   <tingshuo-assistant server="wss://host/v1/realtime" token="..."></tingshuo-assistant>
// Attributes: server, token, mode (hands-free | push-to-talk), lang (UI: en | zh), language
// (what the user speaks: "" auto, en, zh), persona (a server persona id: its role, voice,
// language and greeting), voice, instructions, settings (show the settings
// panel), kiosk (full screen, tap to wake, idle screen), idle-reset (seconds, kiosk).

import { AssistantSession } from "./js/assistant-session.js";
import { pickLanguage, translator } from "./js/i18n.js";

const BOTH_LANGUAGES = { en: translator("en"), zh: translator("zh") };

const STYLE = new URL("./tingshuo-assistant.css", import.meta.url);

/** The Realtime endpoint next to this script: works under any reverse-proxy path prefix. */
export function defaultServerUrl() {
  const url = new URL("../v1/realtime", import.meta.url);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

const TEMPLATE = `
<link rel="stylesheet" href="${STYLE.href}">
<div class="shell" part="shell">
  <header>
    <span class="dot" aria-hidden="true"></span>
    <span class="status" role="status" aria-live="polite"></span>
    <span class="spacer"></span>
    <button class="ui-lang" type="button"></button>
    <button class="gear" type="button" aria-haspopup="dialog">⚙</button>
  </header>
  <div class="recording" role="note" hidden></div>
  <div class="notice" role="alert" hidden></div>
  <ol class="log" aria-live="polite"></ol>
  <div class="latency" aria-live="off"></div>
  <footer>
    <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="1"><div class="meter-fill"></div></div>
    <button class="talk" type="button"></button>
  </footer>
  <form class="settings" hidden>
    <fieldset class="mode"><legend data-t="mode"></legend>
      <label><input type="radio" name="mode" value="hands-free"> <span data-t="handsFree"></span></label>
      <label><input type="radio" name="mode" value="push-to-talk"> <span data-t="pushToTalk"></span></label>
    </fieldset>
    <label><span data-t="language"></span>
      <select name="language"><option value="" data-t="auto"></option><option value="en">English</option><option value="zh">中文</option></select>
    </label>
    <label><span data-t="persona"></span> <select name="persona"><option value="" data-t="none"></option></select></label>
    <label><span data-t="voice"></span> <input name="voice" autocomplete="off" placeholder="tingshuo"></label>
    <label><span data-t="instructions"></span> <textarea name="instructions" rows="3"></textarea></label>
    <button type="submit" data-t="apply"></button>
  </form>
  <div class="idle" hidden><div class="recording" role="note" hidden></div><div class="idle-title"></div><div class="idle-hint"></div></div>
</div>`;

export class TingshuoAssistant extends HTMLElement {
  static observedAttributes = ["lang", "mode", "persona", "voice", "language", "instructions", "settings"];

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = TEMPLATE;
    this.$ = (sel) => this.root.querySelector(sel);
    this.session = null;
    this.items = new Map();
    this.idleTimer = null;
    this.keyHandlers = null;
    this.recording = null; // "off" | "text" | "audio" once the server said: whether this conversation is kept for training
    this.recordingAsked = 0;
  }

  get options() {
    const attr = (name, fallback = "") => this.getAttribute(name) ?? fallback;
    return {
      url: attr("server") || defaultServerUrl(),
      token: attr("token"),
      mode: attr("mode", "hands-free") === "push-to-talk" ? "push-to-talk" : "hands-free",
      voice: attr("voice"),
      language: attr("language"),
      instructions: attr("instructions"),
      persona: attr("persona"),
    };
  }

  get kiosk() {
    return this.hasAttribute("kiosk");
  }

  /** For tests and host pages: counters of what was sent, played and interrupted. */
  get stats() {
    const s = this.session;
    return s ? { state: s.state, ...s.stats } : { state: "idle" };
  }

  connectedCallback() {
    this.t = translator(pickLanguage(this.getAttribute("lang")));
    this.$(".talk").addEventListener("click", () => this.onTalkClick());
    this.$(".talk").addEventListener("pointerdown", (e) => this.onTalkPress(e));
    this.$(".talk").addEventListener("pointerup", () => this.session?.releaseTalk());
    this.$(".talk").addEventListener("pointerleave", () => this.session?.releaseTalk());
    this.$(".gear").addEventListener("click", () => this.toggleSettings());
    this.$(".ui-lang").addEventListener("click", () => this.setAttribute("lang", this.uiLanguage === "zh" ? "en" : "zh"));
    this.$(".settings").addEventListener("submit", (e) => this.applySettings(e));
    this.$(".idle").addEventListener("click", () => this.wake());
    this.keyHandlers = {
      keydown: (e) => this.onKey(e, true),
      keyup: (e) => this.onKey(e, false),
    };
    window.addEventListener("keydown", this.keyHandlers.keydown);
    window.addEventListener("keyup", this.keyHandlers.keyup);
    this.$(".shell").classList.toggle("kiosk", this.kiosk);
    this.$(".gear").hidden = !this.hasAttribute("settings");
    if (this.kiosk) this.showIdle(true);
    this.render();
    this.refreshRecording();
    if (this.hasAttribute("autostart")) this.start().catch(() => {});
  }

  disconnectedCallback() {
    window.removeEventListener("keydown", this.keyHandlers.keydown);
    window.removeEventListener("keyup", this.keyHandlers.keyup);
    clearTimeout(this.idleTimer);
    this.session?.stop();
    this.session = null;
  }

  attributeChangedCallback(name) {
    if (!this.t) return;
    if (name === "lang") this.t = translator(pickLanguage(this.getAttribute("lang")));
    if (name === "settings") this.$(".gear").hidden = !this.hasAttribute("settings");
    if (this.session && ["mode", "persona", "voice", "language", "instructions"].includes(name)) {
      const { mode, persona, voice, language, instructions } = this.options;
      this.session.configure({ mode, persona, voice, language, instructions });
    }
    if (name === "persona" && !this.session) this.refreshRecording();
    this.render();
  }

  get uiLanguage() {
    return pickLanguage(this.getAttribute("lang"));
  }

  // -- lifecycle ----------------------------------------------------------------------
  async start() {
    if (this.session) return;
    const session = new AssistantSession(this.options);
    this.session = session;
    session.addEventListener("state", () => this.render());
    session.addEventListener("level", (e) => this.renderLevel(e.detail.level));
    session.addEventListener("item", (e) => this.renderItem(e.detail));
    session.addEventListener("notice", (e) => this.renderNotice(e.detail));
    session.addEventListener("latency", (e) => this.renderLatency(e.detail));
    session.addEventListener("session", (e) => this.refreshRecording(e.detail.id));
    session.addEventListener("state", (e) => this.dispatchEvent(new CustomEvent("tingshuo-state", { detail: e.detail, bubbles: true, composed: true })));
    try {
      await session.start();
      this.touch();
    } catch (err) {
      this.session = null;
      this.render();
      throw err;
    }
  }

  async stop() {
    const session = this.session;
    this.session = null;
    await session?.stop();
    this.render();
    this.refreshRecording();
  }

  /** Kiosk: forget this visitor's conversation so the next one starts fresh. */
  async reset() {
    await this.stop();
    this.items.clear();
    this.$(".log").replaceChildren();
    this.$(".latency").textContent = "";
    this.renderNotice({ key: null });
    if (this.kiosk) this.showIdle(true);
    this.dispatchEvent(new CustomEvent("tingshuo-reset", { bubbles: true, composed: true }));
  }

  async wake() {
    this.showIdle(false);
    if (this.kiosk) document.documentElement.requestFullscreen?.().catch(() => {});
    await this.start().catch(() => {});
  }

  showIdle(on) {
    this.$(".idle").hidden = !on;
  }

  /** Activity keeps a kiosk conversation alive; silence for idle-reset seconds ends it. */
  touch() {
    if (!this.kiosk) return;
    clearTimeout(this.idleTimer);
    const seconds = Number(this.getAttribute("idle-reset") || 60);
    this.idleTimer = setTimeout(() => {
      const state = this.session?.state;
      if (state === "speaking" || state === "thinking" || state === "hearing") return this.touch();
      this.reset();
    }, seconds * 1000);
  }

  // -- input ------------------------------------------------------------------------
  onTalkClick() {
    if (!this.session) return this.start().catch(() => {});
    if (this.options.mode !== "hands-free") return;
    if (this.kiosk) this.reset(); // a kiosk visitor who stops is done: the next one starts fresh
    else this.stop();
  }

  onTalkPress(e) {
    if (this.session && this.options.mode === "push-to-talk") {
      e.preventDefault();
      this.session.pressTalk();
      this.touch();
    }
  }

  onKey(e, down) {
    if (e.code !== "Space" || !this.session || this.options.mode !== "push-to-talk") return;
    const target = e.composedPath()[0];
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    e.preventDefault();
    if (e.repeat) return;
    if (down) this.session.pressTalk();
    else this.session.releaseTalk();
    this.touch();
  }

  toggleSettings() {
    const form = this.$(".settings");
    form.hidden = !form.hidden;
    if (form.hidden) return;
    const o = this.options;
    form.elements.mode.value = o.mode;
    form.elements.language.value = o.language;
    this.loadPersonas(o.persona);
    form.elements.voice.value = o.voice;
    form.elements.instructions.value = o.instructions;
  }

  /** An HTTP endpoint of the server, next to the Realtime URL (".../v1/realtime" -> ".../v1/" + path). */
  serverUrl(path) {
    const url = new URL(this.options.url.replace(/^ws/, "http"));
    url.pathname = url.pathname.replace(/\/realtime$/, "/" + path);
    url.search = "";
    return url;
  }

  /** Fill the persona menu from the server's list (GET /v1/personas next to the Realtime URL). */
  async loadPersonas(current) {
    const select = this.$(".settings").elements.persona;
    try {
      const { personas } = await (await fetch(this.serverUrl("personas"))).json();
      for (const old of [...select.options].slice(1)) old.remove();
      for (const p of personas) select.add(new Option(`${p.name} (${p.language})`, p.id));
    } catch {
      // an older server or another Realtime server: no persona menu beyond "none"
    }
    select.value = current || "";
  }

  /**
   * Whether the server keeps this conversation for training (data.record, or the persona's
   * record): GET /v1/data/recording, by the session's id after every session.created and
   * session.updated (a persona picked mid-session may turn it on or off), else by the persona
   * the page will ask for (the kiosk's idle screen says it before anyone speaks). The Realtime
   * events carry no such field, so they stay OpenAI's schema. A failed request keeps what is shown.
   */
  async refreshRecording(sessionId = null) {
    const asked = ++this.recordingAsked;
    let record = null;
    try {
      const url = this.serverUrl("data/recording");
      if (sessionId) url.searchParams.set("session", sessionId);
      else if (this.options.persona) url.searchParams.set("persona", this.options.persona);
      const response = await fetch(url, { cache: "no-store" });
      if (response.ok) record = (await response.json()).record;
    } catch {
      // another Realtime server, or the network: nothing new to show
    }
    if (asked !== this.recordingAsked || !record) return; // a newer answer is on its way
    this.recording = record;
    this.renderRecording();
  }

  applySettings(e) {
    e.preventDefault();
    const f = e.target.elements;
    for (const name of ["mode", "persona", "language", "voice", "instructions"]) {
      const value = f[name].value.trim();
      if (value) this.setAttribute(name, value);
      else this.removeAttribute(name);
    }
    e.target.hidden = true;
  }

  // -- rendering --------------------------------------------------------------------
  render() {
    const t = this.t;
    const state = this.session?.state || "idle";
    const shell = this.$(".shell");
    shell.dataset.state = state;
    shell.lang = this.uiLanguage === "zh" ? "zh-CN" : "en";
    this.$(".status").textContent = t(`state.${state}`);
    this.$(".ui-lang").textContent = t("uiLanguage");
    this.$(".gear").title = t("settings");
    this.$(".meter").setAttribute("aria-label", t("level"));
    this.$(".idle-title").textContent = t("tapToTalk");
    this.$(".idle-hint").textContent = t("tapHint");
    for (const el of this.root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    const talk = this.$(".talk");
    const ptt = this.options.mode === "push-to-talk";
    if (!this.session) talk.textContent = t("start");
    else if (ptt) talk.textContent = state === "hearing" ? t("releaseToSend") : t("holdToTalk");
    else talk.textContent = t("stop");
    talk.classList.toggle("ptt", Boolean(this.session) && ptt);
    talk.setAttribute("aria-pressed", String(state === "hearing" && ptt));
    this.renderRecording();
  }

  renderRecording() {
    const on = this.recording === "text" || this.recording === "audio";
    const [first, second] = this.uiLanguage === "zh" ? ["zh", "en"] : ["en", "zh"];
    for (const el of this.root.querySelectorAll(".recording")) {
      el.hidden = !on;
      el.dataset.record = this.recording || "";
      el.replaceChildren(...[first, second].map((lang) => {
        const line = document.createElement("span");
        line.lang = lang === "zh" ? "zh-CN" : "en";
        line.textContent = BOTH_LANGUAGES[lang](this.recording === "audio" ? "recordingAudio" : "recording");
        return line;
      }));
    }
  }

  renderLevel(level) {
    const scaled = Math.min(1, Math.sqrt(level) * 2.2); // speech RMS sits around 0.02-0.2
    this.$(".meter-fill").style.transform = `scaleX(${scaled.toFixed(3)})`;
    this.$(".meter").setAttribute("aria-valuenow", scaled.toFixed(2));
  }

  renderItem(detail) {
    const log = this.$(".log");
    let entry = this.items.get(detail.id);
    if (!entry) {
      if (detail.text === undefined && detail.append === undefined && !detail.committed) return;
      const li = document.createElement("li");
      li.className = `turn ${detail.role}`;
      li.dataset.itemId = detail.id;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = this.t(detail.role === "user" ? "you" : "assistant");
      const text = document.createElement("span");
      text.className = "text";
      const sources = document.createElement("small");
      sources.className = "sources";
      sources.hidden = true;
      li.append(who, text, sources);
      log.append(li);
      entry = { li, text, sources, value: "" };
      this.items.set(detail.id, entry);
      if (detail.role === "user") this.dropEmptyUserTurns(detail.id);
    }
    if (detail.text !== undefined) entry.value = detail.text;
    if (detail.append) entry.value += detail.append;
    if (detail.partial !== undefined) entry.li.classList.toggle("partial", detail.partial);
    if (detail.interrupted) entry.li.classList.add("interrupted");
    if (detail.committed) entry.li.classList.add("committed");
    // The server ends a grounded answer's transcript with its sources on a line of their own
    // ("\n[handbook.md §Tickets]"): shown apart and small, as they were never spoken.
    const cut = entry.value.lastIndexOf("\n[");
    entry.text.textContent = (cut >= 0 ? entry.value.slice(0, cut) : entry.value) || "…";
    entry.sources.textContent = cut >= 0 ? entry.value.slice(cut + 1) : "";
    entry.sources.hidden = cut < 0;
    entry.li.scrollIntoView?.({ block: "end" });
    this.touch();
  }

  /** A speech start the server never committed (a cough, a false start) leaves no bubble. */
  dropEmptyUserTurns(keep) {
    for (const [id, entry] of this.items) {
      if (id !== keep && entry.li.classList.contains("user") && !entry.value && !entry.li.classList.contains("committed")) {
        entry.li.remove();
        this.items.delete(id);
      }
    }
  }

  renderNotice({ key, params, level, reset }) {
    const notice = this.$(".notice");
    if (reset) {
      const hr = document.createElement("li");
      hr.className = "divider";
      hr.textContent = this.t(key);
      this.$(".log").append(hr);
    }
    notice.hidden = !key || reset;
    notice.dataset.level = level || "info";
    notice.dataset.key = key || "";
    notice.textContent = key ? this.t(key, params) : "";
    this.render();
  }

  renderLatency({ heardMs, stages }) {
    const t = this.t;
    const s = (ms) => (ms === null || ms === undefined ? "–" : `${(ms / 1000).toFixed(2)} s`);
    let text = `${t("heardAfter")} ${s(heardMs)}`;
    if (stages) {
      text += ` · ${t("endpoint")} ${s(stages.endpoint)} · ${t("asr")} ${s(stages.asr)} · ${t("llm")} ${s(stages.llm)} · ${t("tts")} ${s(stages.tts)}`;
      if (stages.sent !== null) text += ` · ${t("network")} ${s(Math.max(0, heardMs - stages.sent))}`;
    }
    this.$(".latency").textContent = text;
  }
}

if (!customElements.get("tingshuo-assistant")) customElements.define("tingshuo-assistant", TingshuoAssistant);
