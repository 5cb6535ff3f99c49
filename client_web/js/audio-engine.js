// One AudioContext for the microphone and the speaker, at the session rate where the browser
// allows it (no resampling at all), else at the device rate with the worklets resampling.

const WORKLETS = {
  capture: new URL("./worklets/capture-processor.js", import.meta.url),
  playback: new URL("./worklets/playback-processor.js", import.meta.url),
};

export class MicrophoneError extends Error {
  /** @param {"denied"|"absent"|"insecure"|"failed"} reason */
  constructor(reason, cause) {
    super(`microphone ${reason}: ${cause?.message || cause || ""}`);
    this.reason = reason;
    this.cause = cause;
  }
}

function classifyMicError(err) {
  const name = err?.name || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return "absent";
  return "failed";
}

export class AudioEngine {
  /** @param {{rate: number, frameMs: number, prebufferMs: number}} options */
  constructor({ rate = 24000, frameMs = 20, prebufferMs = 80 } = {}) {
    this.rate = rate;
    this.frameMs = frameMs;
    this.prebufferMs = prebufferMs;
    this.context = null;
    this.stream = null;
    this.capture = null;
    this.playback = null;
    this.onFrame = (_pcm, _level) => {};
    this.onPlayback = (_msg) => {};
    this.flushes = new Map();
    this.flushSeq = 0;
  }

  /** Must run inside a user gesture the first time (autoplay policy). */
  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new MicrophoneError(window.isSecureContext ? "absent" : "insecure");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
    } catch (err) {
      throw new MicrophoneError(classifyMicError(err), err);
    }
    this.stream = stream;
    let source;
    try {
      this.context = new AudioContext({ sampleRate: this.rate, latencyHint: "interactive" });
      source = this.context.createMediaStreamSource(stream);
    } catch {
      // Firefox refuses to connect a device to a context of another rate.
      await this.context?.close();
      this.context = new AudioContext({ latencyHint: "interactive" });
      source = this.context.createMediaStreamSource(stream);
    }
    const ctx = this.context;
    await Promise.all([ctx.audioWorklet.addModule(WORKLETS.capture), ctx.audioWorklet.addModule(WORKLETS.playback)]);
    this.capture = new AudioWorkletNode(ctx, "tingshuo-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: this.rate, frameMs: this.frameMs },
    });
    this.capture.port.onmessage = (e) => this.onFrame(new Int16Array(e.data.pcm), e.data.level);
    source.connect(this.capture);
    this.playback = new AudioWorkletNode(ctx, "tingshuo-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { sourceRate: this.rate, prebufferMs: this.prebufferMs },
    });
    this.playback.port.onmessage = (e) => this.onPlaybackMessage(e.data);
    this.playback.connect(ctx.destination);
    if (ctx.state !== "running") await ctx.resume();
  }

  onPlaybackMessage(msg) {
    if ((msg.type === "flushed" || msg.type === "played") && this.flushes.has(msg.requestId)) {
      this.flushes.get(msg.requestId)(msg);
      this.flushes.delete(msg.requestId);
    }
    this.onPlayback(msg);
  }

  /** Seconds from a sample leaving the worklet to the speaker. */
  get outputLatency() {
    const ctx = this.context;
    return ctx ? (ctx.outputLatency || 0) + (ctx.baseLatency || 0) : 0;
  }

  /** @param {string} itemId @param {Int16Array} pcm PCM16 at the session rate */
  play(itemId, pcm) {
    this.playback?.port.postMessage({ type: "push", itemId, pcm: pcm.buffer }, [pcm.buffer]);
  }

  endOfItem(itemId) {
    this.playback?.port.postMessage({ type: "end", itemId });
  }

  /** Drop everything queued; resolves with what `itemId` (else the item at the head) had played. */
  flush(itemId) {
    return this.ask({ type: "flush", itemId }, { itemId, playedMs: 0, droppedMs: 0 });
  }

  /** Resolves with how much of `itemId` the speaker has been given so far; drops nothing. */
  played(itemId) {
    return this.ask({ type: "played", itemId }, { itemId, playedMs: 0 });
  }

  ask(msg, idle) {
    if (!this.playback) return Promise.resolve(idle);
    const requestId = ++this.flushSeq;
    return new Promise((resolve) => {
      this.flushes.set(requestId, resolve);
      this.playback.port.postMessage({ ...msg, requestId });
    });
  }

  async stop() {
    this.stream?.getTracks().forEach((t) => t.stop());
    this.capture?.disconnect();
    this.playback?.disconnect();
    for (const resolve of this.flushes.values()) resolve({ playedMs: 0, droppedMs: 0 });
    this.flushes.clear();
    await this.context?.close().catch(() => {});
    this.context = this.stream = this.capture = this.playback = null;
  }
}
