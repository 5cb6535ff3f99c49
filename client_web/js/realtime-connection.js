// The WebSocket to a Realtime-protocol server, reconnecting with backoff after a drop.
// A refused key is final (no retry loop hammering the server); anything else is retried.

const KEY_PROTOCOL = "openai-insecure-api-key.";
const CLOSE_POLICY_VIOLATION = 1008;

export class RealtimeConnection extends EventTarget {
  /** @param {{url: string, token?: string, backoffMs?: number[]}} options */
  constructor({ url, token = "", backoffMs = [500, 1000, 2000, 4000, 8000, 15000] }) {
    super();
    this.url = url;
    this.token = token;
    this.backoffMs = backoffMs;
    this.ws = null;
    this.attempt = 0;
    this.wanted = false;
    this.retryTimer = null;
    this.refused = false;
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  connect() {
    this.wanted = true;
    this.refused = false;
    this.openSocket();
  }

  openSocket() {
    clearTimeout(this.retryTimer);
    const protocols = ["realtime"];
    if (this.token) protocols.push(KEY_PROTOCOL + this.token);
    this.emit("connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url, protocols);
    } catch (err) {
      this.emit("fatal", { reason: "bad_url", message: String(err) });
      this.wanted = false;
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.emit("open", {});
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        return;
      }
      if (event.type === "error" && event.error?.code === "invalid_api_key") this.refused = true;
      this.emit("event", event);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.refused || e.code === CLOSE_POLICY_VIOLATION) {
        this.wanted = false;
        this.emit("fatal", { reason: "refused", code: e.code, message: e.reason });
        return;
      }
      if (!this.wanted) {
        this.emit("closed", { code: e.code });
        return;
      }
      const delay = this.nextDelay();
      this.emit("dropped", { code: e.code, retryInMs: delay });
      this.retryTimer = setTimeout(() => this.wanted && this.openSocket(), delay);
    };
  }

  nextDelay() {
    const base = this.backoffMs[Math.min(this.attempt, this.backoffMs.length - 1)];
    this.attempt++;
    return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: clients do not return in lockstep
  }

  send(event) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(event));
    return true;
  }

  /** Bytes queued in the socket; the sender drops audio instead of letting this grow. */
  get backlog() {
    return this.ws?.bufferedAmount || 0;
  }

  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.emit("closed", { code: 1000 });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
