// Microphone -> PCM16 frames at the session rate, on the audio thread.
// Resamples by linear interpolation behind a one-pole low-pass (only when downsampling),
// so the main thread receives ready-to-send frames and a level for the meter.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameMs } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.frameSize = Math.round((targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSize);
    this.fill = 0;
    this.t = 0; // read position of the next output sample; -1 is the previous block's last sample
    this.prev = 0;
    this.lowpass = 0;
    // Cut-off near 0.45 x the target rate; 1 means no filtering.
    this.alpha = this.step > 1 ? 1 - Math.exp((-2 * Math.PI * 0.45 * targetRate) / sampleRate) : 1;
    this.sumSq = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const raw = channels[0];
    const n = raw.length;
    const x = new Float32Array(n);
    let y = this.lowpass;
    for (let i = 0; i < n; i++) {
      y += this.alpha * (raw[i] - y);
      x[i] = y;
    }
    this.lowpass = y;
    let t = this.t;
    while (t <= n - 1) {
      const i = Math.floor(t);
      const f = t - i;
      const a = i < 0 ? this.prev : x[i];
      const v = f > 0 ? a + (x[i + 1] - a) * f : a;
      this.push(v);
      t += this.step;
    }
    this.t = t - n;
    this.prev = x[n - 1];
    return true;
  }

  push(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.sumSq += s * s;
    this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.fill === this.frameSize) {
      const level = Math.sqrt(this.sumSq / this.frameSize);
      this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSize);
      this.fill = 0;
      this.sumSq = 0;
    }
  }
}

registerProcessor("tingshuo-capture", CaptureProcessor);
