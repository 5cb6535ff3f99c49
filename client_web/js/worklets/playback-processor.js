// Assistant audio out: a small jitter buffer on the audio thread.
// Chunks arrive tagged with their conversation item; the processor counts what it actually
// rendered per item, so the page can tell the server how much of an answer was heard
// (conversation.item.truncate) and a flush silences the very next render quantum.

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { sourceRate, prebufferMs } = options.processorOptions;
    this.sourceRate = sourceRate;
    this.step = sourceRate / sampleRate; // source samples per output sample
    this.prebuffer = Math.round((sourceRate * prebufferMs) / 1000);
    this.queue = []; // [{itemId, data: Float32Array}]
    this.pos = 0; // fractional read position in queue[0].data
    this.buffered = 0; // source samples queued and not yet read
    this.ended = new Set(); // items whose last chunk has arrived
    this.playing = false;
    this.consumed = new Map(); // itemId -> source samples rendered
    this.renderedSamples = 0; // output samples carrying assistant audio, all items
    this.underruns = 0;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(msg) {
    if (msg.type === "push") {
      const pcm = new Int16Array(msg.pcm);
      const data = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 0x8000;
      this.queue.push({ itemId: msg.itemId, data });
      this.buffered += data.length;
    } else if (msg.type === "end") {
      this.ended.add(msg.itemId);
    } else if (msg.type === "played") {
      this.port.postMessage({ type: "played", requestId: msg.requestId, itemId: msg.itemId, playedMs: this.playedMs(msg.itemId) });
    } else if (msg.type === "flush") {
      // Barge-in silences everything queued, but reports the item it was asked about: by the
      // time the flush lands, the head of the queue may already be the next answer.
      const itemId = msg.itemId || (this.queue.length ? this.queue[0].itemId : null);
      const dropped = this.buffered;
      this.queue = [];
      this.pos = 0;
      this.buffered = 0;
      this.playing = false;
      this.port.postMessage({
        type: "flushed",
        requestId: msg.requestId,
        itemId,
        playedMs: itemId ? this.playedMs(itemId) : 0,
        droppedMs: (dropped * 1000) / this.sourceRate,
        renderedSamples: this.renderedSamples,
      });
    }
  }

  playedMs(itemId) {
    return ((this.consumed.get(itemId) || 0) * 1000) / this.sourceRate;
  }

  sample(offset) {
    // The source sample `offset` past the start of queue[0], looking into the next chunk.
    const head = this.queue[0].data;
    if (offset < head.length) return head[offset];
    const next = this.queue[1];
    return next && offset - head.length < next.data.length ? next.data[offset - head.length] : head[head.length - 1];
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const frames = out[0].length;
    const channel = out[0];
    channel.fill(0);
    if (!this.playing && this.queue.length) {
      const head = this.queue[0].itemId;
      if (this.buffered >= this.prebuffer || this.ended.has(this.queue[this.queue.length - 1].itemId)) {
        this.playing = true;
        if (!this.consumed.has(head)) this.port.postMessage({ type: "started", itemId: head });
      }
    }
    let written = 0;
    while (this.playing && written < frames && this.queue.length) {
      const chunk = this.queue[0];
      const i = Math.floor(this.pos);
      const f = this.pos - i;
      const a = chunk.data[i];
      channel[written++] = f > 0 ? a + (this.sample(i + 1) - a) * f : a;
      this.current = chunk.itemId;
      this.pos += this.step;
      const advanced = Math.floor(this.pos) - i;
      this.consumed.set(chunk.itemId, (this.consumed.get(chunk.itemId) || 0) + advanced);
      this.buffered -= advanced;
      while (this.queue.length && this.pos >= this.queue[0].data.length) {
        const done = this.queue.shift();
        this.pos -= done.data.length;
        const next = this.queue[0];
        if (!next || next.itemId !== done.itemId) {
          if (this.ended.has(done.itemId)) {
            this.port.postMessage({ type: "finished", itemId: done.itemId, playedMs: this.playedMs(done.itemId) });
          }
          if (next && !this.consumed.has(next.itemId)) this.port.postMessage({ type: "started", itemId: next.itemId });
        }
      }
    }
    this.renderedSamples += written;
    if (this.playing && this.queue.length === 0) {
      this.playing = false;
      this.pos = 0;
      this.buffered = 0;
      if (this.current && !this.ended.has(this.current)) this.underruns++;
    }
    for (let c = 1; c < out.length; c++) out[c].set(channel);
    this.sinceReport += frames;
    if (this.sinceReport >= sampleRate / 10) {
      this.sinceReport = 0;
      this.port.postMessage({
        type: "progress",
        renderedSamples: this.renderedSamples,
        bufferedMs: (this.buffered * 1000) / this.sourceRate,
        underruns: this.underruns,
      });
    }
    return true;
  }
}

registerProcessor("tingshuo-playback", PlaybackProcessor);
