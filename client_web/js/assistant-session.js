// The conversation logic of the page: Realtime events in and out, the visible state,
// barge-in (drop the buffered answer, tell the server what was heard) and per-turn latency.
// Rendering lives in the custom element; this class never touches the DOM.

import { AudioEngine } from "./audio-engine.js";
import { RealtimeConnection } from "./realtime-connection.js";

const MAX_BACKLOG_BYTES = 256 * 1024; // past this the socket is stalled: drop mic audio, not memory
const SEND_LOG_FRAMES = 3000; // a minute of 20 ms frames, to map audio_end_ms to wall time
const INTERRUPTED_SHOW_MS = 900;

function base64FromBytes(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function pcmFromBase64(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
}

/** Server stage timings (ms from the end of speech) as per-stage durations. */
export function stageDurations(latency) {
  if (!latency) return null;
  const at = (k) => (typeof latency[k] === "number" ? latency[k] : null);
  const span = (a, b) => (at(a) === null || at(b) === null ? null : Math.max(0, at(b) - at(a)));
  return {
    endpoint: at("turn_end"),
    asr: span("turn_end", "transcript_final"),
    llm: span("transcript_final", "first_llm_token"),
    tts: span("first_llm_token", "first_tts_chunk"),
    sent: at("first_audio_sent"),
  };
}

export class AssistantSession extends EventTarget {
  /**
   * @param {{url: string, token?: string, mode?: string, rate?: number,
   *          voice?: string, language?: string, instructions?: string, persona?: string}} options
   */
  constructor(options) {
    super();
    this.options = { mode: "hands-free", rate: 24000, voice: "", language: "", instructions: "", persona: "", ...options };
    this.audio = new AudioEngine({ rate: this.options.rate });
    this.audio.onFrame = (pcm, level) => this.onMicFrame(pcm, level);
    this.audio.onPlayback = (msg) => this.onPlayback(msg);
    this.connection = null;
    this.conn = "idle"; // idle | connecting | open | dropped | refused | stopped
    this.connectedOnce = false;
    this.talkHeld = false;
    this.userSpeaking = false;
    this.awaiting = false;
    this.playingItem = null;
    this.interruptedAt = -Infinity;
    this.sentMs = 0;
    this.sendLog = [];
    this.cancelledItems = new Set();
    this.audioItems = new Map(); // itemId -> ms received
    this.unplayed = new Set(); // items with audio not yet played to the end
    this.responseItems = new Map(); // responseId -> itemIds
    this.activeResponse = null;
    this.turn = null; // {speechEndAt, responseId, heardMs}
    this.sessionId = null;
    this.stats = {
      renderedSamples: 0, receivedSamples: 0, sentFrames: 0, droppedFrames: 0, underruns: 0,
      flushes: [], truncates: [], latencies: [], states: [], events: {}, notices: [],
    };
  }

  get state() {
    if (this.conn === "refused") return "error";
    if (this.conn === "idle" || this.conn === "stopped") return "idle";
    if (this.conn === "connecting") return this.connectedOnce ? "disconnected" : "connecting";
    if (this.conn === "dropped") return "disconnected";
    if (performance.now() - this.interruptedAt < INTERRUPTED_SHOW_MS) return "interrupted";
    if (this.userSpeaking || this.talkHeld) return "hearing";
    if (this.playingItem) return "speaking";
    // An answer under way with nothing playing yet (or a gap between its sentences) is still
    // the assistant's turn, also for answers the server starts itself (a persona's greeting).
    if (this.awaiting || this.activeResponse) return "thinking";
    return this.options.mode === "push-to-talk" ? "idle" : "listening";
  }

  emit(type, detail = {}) {
    if (type === "notice" && detail.key) this.stats.notices.push(detail.key);
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  changed() {
    const state = this.state;
    const states = this.stats.states;
    if (states[states.length - 1] !== state) {
      states.push(state);
      if (states.length > 200) states.shift();
    }
    this.emit("state", { state });
  }

  /** Opens the microphone (inside a user gesture), then the connection. */
  async start() {
    this.conn = "connecting";
    this.changed();
    try {
      await this.audio.start();
    } catch (err) {
      this.conn = "stopped";
      this.changed();
      this.emit("notice", { key: `mic.${err.reason || "failed"}`, level: "error" });
      throw err;
    }
    this.connection = new RealtimeConnection({ url: this.options.url, token: this.options.token });
    const c = this.connection;
    c.addEventListener("connecting", () => {
      this.conn = "connecting";
      this.changed();
    });
    c.addEventListener("open", () => this.onOpen());
    c.addEventListener("event", (e) => this.onServerEvent(e.detail));
    c.addEventListener("dropped", (e) => {
      this.conn = "dropped";
      this.resetTurn();
      this.changed();
      this.emit("notice", { key: "dropped", params: { s: (e.detail.retryInMs / 1000).toFixed(1) }, level: "warn" });
    });
    c.addEventListener("fatal", (e) => {
      this.conn = "refused";
      this.changed();
      this.emit("notice", { key: e.detail.reason === "refused" ? "refused" : "serverError", params: { m: e.detail.message }, level: "error" });
    });
    c.connect();
  }

  async stop() {
    this.connection?.close();
    this.connection = null;
    await this.audio.stop();
    this.conn = "stopped";
    this.resetTurn();
    this.changed();
  }

  resetTurn() {
    this.userSpeaking = this.awaiting = this.talkHeld = false;
    this.playingItem = null;
    this.activeResponse = null;
    this.turn = null;
    this.audio.flush();
  }

  onOpen() {
    const again = this.connectedOnce;
    this.connectedOnce = true;
    this.conn = "open";
    this.sentMs = 0; // audio_end_ms counts from the start of this connection's audio
    this.sendLog = [];
    this.sendSessionUpdate();
    if (again) this.emit("notice", { key: "reconnected", level: "info", reset: true });
    else this.emit("notice", { key: null });
    this.changed();
  }

  sessionConfig() {
    const o = this.options;
    const format = { type: "audio/pcm", rate: o.rate };
    const input = {
      format,
      transcription: o.language ? { language: o.language } : {},
      turn_detection:
        o.mode === "push-to-talk"
          ? null
          : { type: "semantic_vad", eagerness: "auto", create_response: true, interrupt_response: true },
    };
    const output = { format };
    if (o.voice) output.voice = o.voice;
    const session = { type: "realtime", output_modalities: ["audio"], audio: { input, output } };
    if (o.persona) session.prompt = { id: o.persona };
    if (o.instructions) session.instructions = o.instructions;
    return session;
  }

  sendSessionUpdate() {
    this.connection?.send({ type: "session.update", session: this.sessionConfig() });
  }

  /** Change mode, persona, voice, language or instructions; applied at once through session.update. */
  configure(changes) {
    Object.assign(this.options, changes);
    if (this.conn === "open") this.sendSessionUpdate();
    this.changed();
  }

  // -- microphone -------------------------------------------------------------------
  onMicFrame(pcm, level) {
    this.emit("level", { level });
    if (this.conn !== "open") return;
    if (this.options.mode === "push-to-talk" && !this.talkHeld) return;
    if (this.connection.backlog > MAX_BACKLOG_BYTES) {
      this.stats.droppedFrames++;
      return;
    }
    const sent = this.connection.send({
      type: "input_audio_buffer.append",
      audio: base64FromBytes(new Uint8Array(pcm.buffer)),
    });
    if (!sent) return;
    this.stats.sentFrames++;
    this.sentMs += (pcm.length * 1000) / this.options.rate;
    this.sendLog.push([this.sentMs, performance.now()]);
    if (this.sendLog.length > SEND_LOG_FRAMES) this.sendLog.splice(0, this.sendLog.length - SEND_LOG_FRAMES);
  }

  /** Wall time at which the audio up to `ms` had been sent. */
  sentAt(ms) {
    for (const [endMs, at] of this.sendLog) if (endMs >= ms) return at;
    return performance.now();
  }

  // -- push to talk -----------------------------------------------------------------
  async pressTalk() {
    if (this.conn !== "open" || this.talkHeld) return;
    this.talkHeld = true;
    await this.interrupt({ cancel: true });
    this.connection.send({ type: "input_audio_buffer.clear" });
    this.changed();
  }

  releaseTalk() {
    if (!this.talkHeld) return;
    this.talkHeld = false;
    if (this.conn !== "open") return this.changed();
    this.turn = { speechEndAt: performance.now() };
    this.awaiting = true;
    this.connection.send({ type: "input_audio_buffer.commit" });
    this.connection.send({ type: "response.create" });
    this.changed();
  }

  // -- barge-in ---------------------------------------------------------------------
  /** Silence the answer now and tell the server how much of it was heard. */
  async interrupt({ cancel = false } = {}) {
    const responseId = this.activeResponse;
    if (responseId) for (const id of this.responseItems.get(responseId) || []) this.cancelledItems.add(id);
    if (cancel && responseId) this.connection?.send({ type: "response.cancel", response_id: responseId });
    const item = this.playingItem || [...this.unplayed].pop();
    if (!item) return this.changed();
    this.cancelledItems.add(item);
    this.unplayed.clear();
    const wasPlaying = Boolean(this.playingItem);
    const flushed = await this.audio.flush(item);
    this.playingItem = null;
    this.stats.flushes.push({ itemId: item, playedMs: flushed.playedMs, droppedMs: flushed.droppedMs, renderedSamples: flushed.renderedSamples });
    if (wasPlaying || flushed.droppedMs > 0) {
      this.interruptedAt = performance.now();
      setTimeout(() => this.changed(), INTERRUPTED_SHOW_MS + 20);
      const received = this.audioItems.get(item) || 0;
      const audioEndMs = Math.floor(Math.min(flushed.playedMs, received));
      this.connection?.send({ type: "conversation.item.truncate", item_id: item, content_index: 0, audio_end_ms: audioEndMs });
      this.stats.truncates.push({ itemId: item, audioEndMs });
      this.emit("item", { id: item, role: "assistant", interrupted: true });
    }
    this.changed();
  }

  // -- server events ----------------------------------------------------------------
  onServerEvent(event) {
    this.stats.events[event.type] = (this.stats.events[event.type] || 0) + 1;
    switch (event.type) {
      case "session.created":
      case "session.updated":
        // The element asks the server, by this id, whether the conversation is recorded.
        this.sessionId = event.session?.id || null;
        this.emit("session", { id: this.sessionId });
        break;
      case "input_audio_buffer.speech_started":
        this.userSpeaking = true;
        this.emit("item", { id: event.item_id, role: "user", text: "", partial: true });
        if (this.playingItem || this.activeResponse) this.interrupt();
        break;
      case "input_audio_buffer.speech_stopped":
        this.userSpeaking = false;
        this.turn = { speechEndAt: this.sentAt(event.audio_end_ms) };
        break;
      case "input_audio_buffer.committed":
        this.awaiting = true;
        this.emit("item", { id: event.item_id, role: "user", committed: true });
        break;
      case "conversation.item.input_audio_transcription.delta":
        this.emit("item", { id: event.item_id, role: "user", append: event.delta, partial: true });
        break;
      case "conversation.item.input_audio_transcription.completed":
        this.emit("item", { id: event.item_id, role: "user", text: event.transcript, partial: false });
        break;
      case "conversation.item.input_audio_transcription.failed":
        this.emit("item", { id: event.item_id, role: "user", text: "…", partial: false });
        break;
      case "response.created":
        this.activeResponse = event.response.id;
        this.responseItems.set(event.response.id, []);
        if (this.turn) this.turn.responseId = event.response.id;
        break;
      case "response.output_item.added":
        this.responseItems.get(event.response_id)?.push(event.item.id);
        this.emit("item", { id: event.item.id, role: "assistant", text: "", partial: true });
        break;
      case "response.output_audio_transcript.delta":
      case "response.output_text.delta":
        this.emit("item", { id: event.item_id, role: "assistant", append: event.delta, partial: true });
        break;
      case "response.output_audio.delta":
        this.onAudioDelta(event);
        break;
      case "response.output_audio.done":
        this.audio.endOfItem(event.item_id);
        break;
      case "response.done":
        this.onResponseDone(event.response);
        break;
      case "error":
        if (event.error?.code !== "invalid_api_key") {
          this.emit("notice", { key: "serverError", params: { m: event.error?.message || "error" }, level: "warn" });
        }
        break;
    }
    this.changed();
  }

  onAudioDelta(event) {
    if (this.cancelledItems.has(event.item_id)) return; // stale frames of an interrupted answer
    const pcm = pcmFromBase64(event.delta);
    this.stats.receivedSamples += pcm.length;
    this.audioItems.set(event.item_id, (this.audioItems.get(event.item_id) || 0) + (pcm.length * 1000) / this.options.rate);
    this.unplayed.add(event.item_id);
    this.audio.play(event.item_id, pcm);
  }

  onResponseDone(response) {
    if (this.activeResponse === response.id) this.activeResponse = null;
    for (const item of response.output || []) {
      this.emit("item", { id: item.id, role: "assistant", partial: false, interrupted: response.status === "cancelled" });
      if (response.status !== "completed") this.audio.endOfItem(item.id);
    }
    if (response.status === "cancelled" && this.playingItem) this.interrupt();
    if (!this.playingItem) this.awaiting = false;
    const turn = this.turn;
    if (turn && turn.responseId === response.id) {
      turn.server = response.latency || null;
      this.reportLatency(turn);
    }
  }

  onPlayback(msg) {
    if (msg.type === "progress") {
      this.stats.renderedSamples = msg.renderedSamples;
      this.stats.underruns = msg.underruns;
      return;
    }
    if (msg.type === "started") {
      if (this.cancelledItems.has(msg.itemId)) return;
      this.playingItem = msg.itemId;
      this.awaiting = false;
      const turn = this.turn;
      if (turn && turn.heardMs === undefined && turn.speechEndAt !== undefined) {
        turn.heardMs = performance.now() + this.audio.outputLatency * 1000 - turn.speechEndAt;
        this.reportLatency(turn);
      }
    } else if (msg.type === "finished") {
      if (this.playingItem === msg.itemId) this.playingItem = null;
      this.unplayed.delete(msg.itemId);
    } else if (msg.type === "flushed") {
      this.stats.renderedSamples = msg.renderedSamples;
    }
    this.changed();
  }

  reportLatency(turn) {
    if (turn.heardMs === undefined || turn.reported === "full") return;
    const stages = stageDurations(turn.server);
    turn.reported = stages ? "full" : "heard";
    const entry = { responseId: turn.responseId, heardMs: Math.round(turn.heardMs), stages };
    if (stages) this.stats.latencies.push(entry);
    this.emit("latency", entry);
  }
}
