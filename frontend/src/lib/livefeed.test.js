import { describe, it, expect, beforeEach } from 'vitest';
import { LiveFeed, liveUrl, backoffDelay } from './livefeed.js';

// A websocket the test drives by hand.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.closed = false;
    FakeSocket.all.push(this);
  }
  open() {
    this.onopen && this.onopen({});
  }
  frame(obj) {
    this.onmessage && this.onmessage({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) });
  }
  drop(code = 1006, reason = '') {
    this.closed = true;
    this.onclose && this.onclose({ code, reason });
  }
  close() {
    this.closed = true;
  }
}

function harness(opts = {}) {
  FakeSocket.all = [];
  const timers = [];
  const frames = [];
  const batches = [];
  const statuses = [];
  const feed = new LiveFeed({
    url: (since) => liveUrl({ protocol: 'http:', host: 'h:1' }, '/ws/v1/messages/', since),
    WebSocketImpl: FakeSocket,
    onBatch: (b, skipped) => batches.push({ ids: b.map((f) => f.id), skipped }),
    onStatus: (s) => statuses.push(s),
    schedule: (fn) => frames.push(fn),
    setTimer: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimer: () => {},
    random: () => 1,
    ...opts,
  });
  const runFrame = () => frames.splice(0).forEach((f) => f());
  const runTimer = () => timers.shift().fn();
  const sock = () => FakeSocket.all[FakeSocket.all.length - 1];
  return { feed, timers, frames, batches, statuses, runFrame, runTimer, sock };
}

describe('liveUrl', () => {
  it('follows the page scheme and host', () => {
    expect(liveUrl({ protocol: 'http:', host: 'a:8' })).toBe('ws://a:8/ws/v1/messages/');
    expect(liveUrl({ protocol: 'https:', host: 'a' }, '/ws/v1/messages/', 'id 1')).toBe('wss://a/ws/v1/messages/?since=id%201');
  });
});

describe('backoffDelay', () => {
  it('doubles up to the cap, with jitter in the upper half', () => {
    const one = () => 1;
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, { base: 100, max: 1000, random: one }))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelay(3, { base: 100, max: 1000, random: () => 0 })).toBe(400);
  });
});

describe('LiveFeed', () => {
  let h;
  beforeEach(() => {
    h = harness();
  });

  it('batches frames: one hand-over per animation frame', () => {
    h.feed.start();
    h.sock().open();
    for (let i = 1; i <= 500; i++) h.sock().frame({ id: 'm' + String(i).padStart(4, '0'), data: { i } });
    expect(h.frames.length).toBe(1);
    expect(h.batches.length).toBe(0);
    h.runFrame();
    expect(h.batches.length).toBe(1);
    expect(h.batches[0].ids.length).toBe(500);
    expect(h.feed.lastId).toBe('m0500');
  });

  it('reconnects with since=<last id> and drops frames it has already seen', () => {
    h.feed.start();
    expect(h.sock().url).toBe('ws://h:1/ws/v1/messages/');
    h.sock().open();
    h.sock().frame({ id: 'a' });
    h.sock().frame({ id: 'b' });
    h.sock().drop(1012, 'service restart');
    expect(h.feed.status).toBe('reconnecting');
    expect(h.timers.length).toBe(1);
    h.runTimer();
    expect(h.sock().url).toBe('ws://h:1/ws/v1/messages/?since=b');
    h.sock().open();
    expect(h.feed.status).toBe('connected');
    // A replay that overlaps what was seen: b is not shown twice.
    h.sock().frame({ id: 'b' });
    h.sock().frame({ id: 'c' });
    h.runFrame();
    expect(h.batches.flatMap((b) => b.ids)).toEqual(['a', 'b', 'c']);
  });

  it('backs off exponentially while the server is away, then says offline', () => {
    h.feed.start();
    const delays = [];
    for (let i = 0; i < 6; i++) {
      h.sock().drop(1006);
      delays.push(h.timers[0].ms);
      h.runTimer();
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000]);
    expect(h.statuses).toContain('reconnecting');
    expect(h.feed.status).toBe('offline');
    // A good connection resets the backoff.
    h.sock().open();
    expect(h.feed.status).toBe('connected');
    h.sock().drop(1001);
    expect(h.timers[0].ms).toBe(250);
  });

  it('resumes at once when closed for being too slow', () => {
    h.feed.start();
    h.sock().open();
    h.sock().frame({ id: 'x1' });
    h.sock().drop(1008, 'too slow; resume with since');
    expect(h.timers[0].ms).toBe(0);
    h.runTimer();
    expect(h.sock().url).toMatch(/since=x1$/);
  });

  it('keeps a bounded backlog while nothing renders and counts the rest', () => {
    h = harness({ maxPending: 10 });
    h.feed.start();
    h.sock().open();
    for (let i = 0; i < 25; i++) h.sock().frame({ id: 'k' + String(i).padStart(2, '0') });
    h.runFrame();
    expect(h.batches[0].ids).toEqual(Array.from({ length: 10 }, (_, i) => 'k' + (15 + i)));
    expect(h.batches[0].skipped).toBe(15);
  });

  it('ignores frames that are not JSON objects and stops cleanly', () => {
    h.feed.start();
    h.sock().open();
    h.sock().frame('not json');
    h.sock().frame('42');
    h.runFrame();
    expect(h.batches.length).toBe(0);
    const s = h.sock();
    h.feed.stop();
    expect(s.closed).toBe(true);
    expect(h.feed.status).toBe('offline');
    s.drop(1000);
    expect(h.timers.length).toBe(0);
  });
});
