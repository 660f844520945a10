// The live feed's connection: one websocket (or one EventSource) to
// liveupdate, reconnected with exponential backoff, resuming with
// ?since=<last id> (an EventSource sends Last-Event-ID by itself) so that no
// message is lost across a reconnect. A position the server does not know
// (close 4404, or an SSE "gap" event) is shown as a gap and the feed carries
// on live. Frames are handed to the view in batches, at most one per
// minInterval, so a burst of 1,000 messages a second costs ten renders a
// second rather than one per message. The page runs it in a worker
// (feedworker.js, through feedhost.js), so the messages' events and parsing
// never take the page's main thread.

// url with ?since=<id> (or &since=) added when there is a position.
export function withSince(url, since) {
  if (!since) return url;
  return url + (url.includes('?') ? '&' : '?') + 'since=' + encodeURIComponent(since);
}

// ws(s)://host/ws/v1/messages/ derived from the page's location.
export function liveUrl(loc, path = '/ws/v1/messages/', since = null) {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return withSince(proto + '//' + loc.host + path, since);
}

// http(s)://host/events/v1/messages/ : the same channel as Server-Sent Events.
export function sseUrl(loc, path = '/events/v1/messages/', since = null) {
  return withSince(loc.protocol + '//' + loc.host + path, since);
}

// Delay before reconnect attempt `attempt` (0-based): base * 2^attempt,
// capped, with jitter in [50%, 100%] so many browsers do not come back at once.
export function backoffDelay(attempt, { base = 250, max = 10000, random = Math.random } = {}) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}

// Close codes liveupdate uses: 1008 too slow (resume at once), 1001 going
// away, 1011/1014 resume failed or broker loss (resume after a backoff),
// 4404 unknown position (mark a gap, continue live without since).
export const CLOSE_TOO_SLOW = 1008;
export const CLOSE_UNKNOWN_POSITION = 4404;

const defaultSchedule = (fn) =>
  typeof requestAnimationFrame === 'function' ? requestAnimationFrame(fn) : setTimeout(fn, 16);

export class LiveFeed {
  constructor({
    url, // function(since) -> websocket (or, with transport 'sse', event stream) URL
    transport = 'ws', // 'ws' or 'sse'
    WebSocketImpl = globalThis.WebSocket,
    EventSourceImpl = globalThis.EventSource,
    onBatch = () => {}, // (frames oldest first, skipped count)
    onStatus = () => {}, // (status, detail)
    onGap = () => {}, // (reason): messages were missed and cannot be replayed
    schedule = defaultSchedule,
    setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (t) => clearTimeout(t),
    random = Math.random,
    base = 250,
    max = 10000,
    offlineAfter = 4, // failed attempts in a row before the indicator says offline
    maxPending = 1000, // frames kept while the page does not render (hidden tab)
    dedupeWindow = 5000,
    stableMs = 5000, // a connection open this long (or that delivered a frame) resets the backoff
    // At most one batch to the view per minInterval ms: a burst of 1,000
    // messages a second costs about ten renders a second, not sixty, and a
    // message still shows within a tenth of a second.
    minInterval = 100,
    now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now()),
  }) {
    this.url = url;
    this.transport = transport;
    this.WebSocketImpl = WebSocketImpl;
    this.EventSourceImpl = EventSourceImpl;
    this.onBatch = onBatch;
    this.onStatus = onStatus;
    this.onGap = onGap;
    this.stableMs = stableMs;
    this.schedule = schedule;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.random = random;
    this.base = base;
    this.max = max;
    this.offlineAfter = offlineAfter;
    this.maxPending = maxPending;
    this.dedupeWindow = dedupeWindow;
    this.minInterval = minInterval;
    this.now = now;
    this.lastFlush = -Infinity;
    this.flushTimer = null;

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
    // The ids of the last dedupeWindow frames: a set to look them up and a
    // ring holding them in arrival order, whose slot for the next id holds
    // the one to forget, so that a frame costs the same however full the
    // window is (a stream of 1,000 a second keeps it full).
    this.seen = new Set();
    this.seenRing = new Array(Math.max(1, dedupeWindow));
    this.seenAt = 0;
    this.lastClose = null;
    this.stableTimer = null;
    this.gaps = 0;
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
    if (this.flushTimer !== null) this.clearTimer(this.flushTimer);
    this.flushTimer = null;
    this.flushScheduled = false;
    this.unstable();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        if (this.transport === 'sse') ws.close();
        else ws.close(1000, 'page closed');
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

  // The backoff starts over only once a connection proved good: it delivered
  // a frame or stayed open for stableMs. A server that accepts and at once
  // closes again is retried ever more slowly, not at the base delay forever.
  stable() {
    this.unstable();
    this.attempt = 0;
  }

  unstable() {
    if (this.stableTimer !== null) this.clearTimer(this.stableTimer);
    this.stableTimer = null;
  }

  opened() {
    this.setStatus('connected');
    this.unstable();
    this.stableTimer = this.setTimer(() => {
      this.stableTimer = null;
      this.attempt = 0;
    }, this.stableMs);
  }

  // The server does not know our position: show a gap, carry on live.
  gap(reason) {
    this.gaps++;
    this.lastId = null;
    this.flush(); // what arrived before the gap is shown before it
    this.onGap(reason || 'unknown position');
  }

  connect() {
    this.timer = null;
    if (!this.running) return;
    this.setStatus(this.attempt === 0 && this.reconnects === 0 ? 'connecting' : this.attemptStatus());
    if (this.transport === 'sse') {
      this.connectSse();
      return;
    }
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url(this.lastId));
    } catch (e) {
      this.scheduleReconnect(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.opened();
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onerror = () => {
      /* onclose follows and decides */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.unstable();
      this.lastClose = { code: ev.code, reason: ev.reason };
      if (!this.running) return;
      this.reconnects++;
      if (ev.code === CLOSE_TOO_SLOW) {
        // We fell behind: resume from the last id at once.
        this.setStatus('reconnecting', 'too slow; resuming');
        this.timer = this.setTimer(() => this.connect(), 0);
        return;
      }
      if (ev.code === CLOSE_UNKNOWN_POSITION) {
        this.gap(ev.reason);
        this.setStatus('reconnecting', 'unknown position; continuing live');
        this.timer = this.setTimer(() => this.connect(), 0);
        return;
      }
      this.scheduleReconnect(ev.reason || 'closed (' + ev.code + ')');
    };
  }

  // An EventSource reconnects by itself after a dropped stream, sending
  // Last-Event-ID; it gives up for good on an HTTP error (503 while the
  // broker is away), and then this reconnects it with the backoff.
  connectSse() {
    let es;
    try {
      es = new this.EventSourceImpl(this.url(this.lastId));
    } catch (e) {
      this.scheduleReconnect(String(e));
      return;
    }
    this.ws = es;
    es.onopen = () => this.opened();
    es.onmessage = (ev) => this.receive(ev.data);
    es.addEventListener('gap', (ev) => {
      let reason = 'unknown position';
      try {
        reason = JSON.parse(ev.data).reason || reason;
      } catch {
        /* keep the default */
      }
      this.gap(reason);
    });
    es.onerror = () => {
      if (this.ws !== es) return;
      this.unstable();
      if (es.readyState === 2) {
        // CLOSED: the browser will not retry this one.
        this.ws = null;
        es.onopen = es.onmessage = es.onerror = null;
        es.close();
        if (!this.running) return;
        this.reconnects++;
        this.scheduleReconnect('event stream closed');
        return;
      }
      this.setStatus('reconnecting', 'event stream interrupted; resuming');
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
    const old = this.seenRing[this.seenAt];
    if (old !== undefined) this.seen.delete(old);
    this.seenRing[this.seenAt] = id;
    this.seenAt = (this.seenAt + 1) % this.seenRing.length;
    this.seen.add(id);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not ours
    }
    if (!frame || typeof frame !== 'object') return;
    if (this.stableTimer !== null || this.attempt) this.stable();
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
      const wait = this.lastFlush + this.minInterval - this.now();
      if (wait > 0) {
        this.flushTimer = this.setTimer(() => {
          this.flushTimer = null;
          this.schedule(() => this.flush());
        }, wait);
      } else {
        this.schedule(() => this.flush());
      }
    }
  }

  flush() {
    this.flushScheduled = false;
    if (this.flushTimer !== null) this.clearTimer(this.flushTimer);
    this.flushTimer = null;
    this.lastFlush = this.now();
    if (!this.pending.length && !this.skipped) return;
    const batch = this.pending;
    const skipped = this.skipped;
    this.pending = [];
    this.skipped = 0;
    this.onBatch(batch, skipped);
  }
}
