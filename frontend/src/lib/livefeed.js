// The live feed's connection: one websocket to liveupdate, reconnected with
// exponential backoff, resuming with ?since=<last id> so that no message is
// lost across a reconnect. Frames are handed to the view in batches, once per
// animation frame, so a burst of 500 messages a second costs one render per
// frame rather than one per message.

// ws(s)://host/ws/v1/messages/ derived from the page's location.
export function liveUrl(loc, path = '/ws/v1/messages/', since = null) {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = proto + '//' + loc.host + path;
  if (since) url += (url.includes('?') ? '&' : '?') + 'since=' + encodeURIComponent(since);
  return url;
}

// Delay before reconnect attempt `attempt` (0-based): base * 2^attempt,
// capped, with jitter in [50%, 100%] so many browsers do not come back at once.
export function backoffDelay(attempt, { base = 250, max = 10000, random = Math.random } = {}) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}

// Close codes liveupdate uses: 1008 too slow (resume at once), 1001 going
// away, 1012/1014 restart or broker loss (resume after a backoff).
export const CLOSE_TOO_SLOW = 1008;

const defaultSchedule = (fn) =>
  typeof requestAnimationFrame === 'function' ? requestAnimationFrame(fn) : setTimeout(fn, 16);

export class LiveFeed {
  constructor({
    url, // function(since) -> websocket URL
    WebSocketImpl = globalThis.WebSocket,
    onBatch = () => {}, // (frames oldest first, skipped count)
    onStatus = () => {}, // (status, detail)
    schedule = defaultSchedule,
    setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (t) => clearTimeout(t),
    random = Math.random,
    base = 250,
    max = 10000,
    offlineAfter = 4, // failed attempts in a row before the indicator says offline
    maxPending = 1000, // frames kept while the page does not render (hidden tab)
    dedupeWindow = 5000,
  }) {
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.onBatch = onBatch;
    this.onStatus = onStatus;
    this.schedule = schedule;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.random = random;
    this.base = base;
    this.max = max;
    this.offlineAfter = offlineAfter;
    this.maxPending = maxPending;
    this.dedupeWindow = dedupeWindow;

    this.ws = null;
    this.status = 'idle';
    this.lastId = null;
    this.attempt = 0; // failed attempts since the last good connection
    this.reconnects = 0;
    this.timer = null;
    this.running = false;
    this.pending = [];
    this.skipped = 0;
    this.flushScheduled = false;
    this.seen = new Set();
    this.seenOrder = [];
    this.lastClose = null;
  }

  setStatus(status, detail = '') {
    if (this.status === status && !detail) return;
    this.status = status;
    this.onStatus(status, detail);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'page closed');
      } catch {
        /* already closed */
      }
    }
    this.setStatus('offline', 'stopped');
  }

  // Reconnect now (the browser came back online, or the user asked).
  kick() {
    if (!this.running || this.ws) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.connect();
  }

  connect() {
    this.timer = null;
    if (!this.running) return;
    this.setStatus(this.attempt === 0 && this.reconnects === 0 ? 'connecting' : this.attemptStatus());
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url(this.lastId));
    } catch (e) {
      this.scheduleReconnect(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus('connected');
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onerror = () => {
      /* onclose follows and decides */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lastClose = { code: ev.code, reason: ev.reason };
      if (!this.running) return;
      this.reconnects++;
      if (ev.code === CLOSE_TOO_SLOW) {
        // We fell behind: resume from the last id at once.
        this.setStatus('reconnecting', 'too slow; resuming');
        this.timer = this.setTimer(() => this.connect(), 0);
        return;
      }
      this.scheduleReconnect(ev.reason || 'closed (' + ev.code + ')');
    };
  }

  attemptStatus() {
    return this.attempt >= this.offlineAfter ? 'offline' : 'reconnecting';
  }

  scheduleReconnect(detail) {
    const delay = backoffDelay(this.attempt, { base: this.base, max: this.max, random: this.random });
    this.attempt++;
    this.nextDelay = delay;
    this.setStatus(this.attemptStatus(), detail);
    this.timer = this.setTimer(() => this.connect(), delay);
  }

  remember(id) {
    this.seen.add(id);
    this.seenOrder.push(id);
    if (this.seenOrder.length > this.dedupeWindow) {
      const old = this.seenOrder.splice(0, this.seenOrder.length - this.dedupeWindow);
      for (const o of old) this.seen.delete(o);
    }
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not ours
    }
    if (!frame || typeof frame !== 'object') return;
    if (typeof frame.id === 'string') {
      if (this.seen.has(frame.id)) return; // replayed after a resume
      this.remember(frame.id);
      this.lastId = frame.id;
    }
    this.pending.push(frame);
    if (this.pending.length > this.maxPending) {
      const extra = this.pending.length - this.maxPending;
      this.pending.splice(0, extra);
      this.skipped += extra;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.schedule(() => this.flush());
    }
  }

  flush() {
    this.flushScheduled = false;
    if (!this.pending.length && !this.skipped) return;
    const batch = this.pending;
    const skipped = this.skipped;
    this.pending = [];
    this.skipped = 0;
    this.onBatch(batch, skipped);
  }
}
