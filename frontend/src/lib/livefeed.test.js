import { describe, it, expect, beforeEach } from 'vitest';
import { LiveFeed, liveUrl, sseUrl, backoffDelay } from './livefeed.js';
import { FakeSocket } from './fakesocket.js';

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
      const t = { fn, ms };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => {
      const i = timers.indexOf(t);
      if (i >= 0) timers.splice(i, 1);
    },
    random: () => 1,
    minInterval: 0,
    ...opts,
  });
  const runFrame = () => frames.splice(0).forEach((f) => f());
  const runTimer = () => timers.shift().fn();
  const sock = () => FakeSocket.all[FakeSocket.all.length - 1];
  return { feed, timers, frames, batches, statuses, runFrame, runTimer, sock };
}

// An EventSource the test drives by hand.
class FakeEventSource {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.listeners = {};
    FakeEventSource.all.push(this);
  }
  addEventListener(type, fn) {
    this.listeners[type] = fn;
  }
  open() {
    this.readyState = 1;
    this.onopen && this.onopen({});
  }
  message(obj) {
    this.onmessage && this.onmessage({ data: JSON.stringify(obj), lastEventId: obj.id });
  }
  event(type, obj) {
    this.listeners[type] && this.listeners[type]({ data: JSON.stringify(obj) });
  }
  fail(readyState) {
    this.readyState = readyState;
    this.onerror && this.onerror({});
  }
  close() {
    this.readyState = 2;
  }
}

describe('LiveFeed over Server-Sent Events', () => {
  it('takes messages, marks gaps, and reconnects with since once the browser gives up', () => {
    FakeEventSource.all = [];
    const gaps = [];
    const h = harness({
      transport: 'sse',
      EventSourceImpl: FakeEventSource,
      url: (since) => sseUrl({ protocol: 'http:', host: 'h:1' }, '/events/v1/messages/', since),
      onGap: (r) => gaps.push(r),
    });
    const es = () => FakeEventSource.all[FakeEventSource.all.length - 1];
    h.feed.start();
    expect(es().url).toBe('http://h:1/events/v1/messages/');
    es().open();
    es().message({ id: 's1' });
    es().message({ id: 's2' });
    // A dropped stream: the browser reconnects by itself (Last-Event-ID).
    es().fail(0);
    expect(h.feed.status).toBe('reconnecting');
    expect(FakeEventSource.all.length).toBe(1);
    es().open();
    es().message({ id: 's2' }); // seen already: not shown twice
    es().event('gap', { reason: 'unknown position, resuming from now' });
    expect(gaps).toEqual(['unknown position, resuming from now']);
    // An HTTP error: the browser gives up; the feed reconnects after a backoff.
    es().message({ id: 's3' });
    es().fail(2);
    expect(h.timers.map((t) => t.ms)).toEqual([250]);
    h.runTimer();
    expect(es().url).toBe('http://h:1/events/v1/messages/?since=s3');
    h.runFrame();
    expect(h.batches.flatMap((b) => b.ids)).toEqual(['s1', 's2', 's3']);
  });
});

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

  it('remembers the ids of the last dedupeWindow frames, and only those', () => {
    h = harness({ dedupeWindow: 3 });
    h.feed.start();
    h.sock().open();
    for (const id of ['a', 'b', 'c', 'd']) h.sock().frame({ id });
    // The window holds b, c, d: a replay of them is dropped, a is shown
    // again (it fell out of the window), and the ring goes round many times.
    for (const id of ['b', 'c', 'd', 'a']) h.sock().frame({ id });
    for (let i = 0; i < 10; i++) h.sock().frame({ id: 'x' + i });
    h.sock().frame({ id: 'x8' });
    h.sock().frame({ id: 'x6' });
    h.runFrame();
    expect(h.batches.flatMap((b) => b.ids)).toEqual(['a', 'b', 'c', 'd', 'a', ...Array.from({ length: 10 }, (_, i) => 'x' + i), 'x6']);
    expect(h.feed.seen.size).toBe(3);
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
    // A connection that is accepted and closed at once does not reset it...
    h.sock().open();
    expect(h.feed.status).toBe('connected');
    h.sock().drop(1011, 'resume failed; retry with since');
    expect(h.timers[0].ms).toBe(10000);
    h.runTimer();
    // ...one that delivers a frame does,
    h.sock().open();
    h.sock().frame({ id: 'g1' });
    h.sock().drop(1001);
    expect(h.timers[0].ms).toBe(250);
    h.runTimer();
    // and so does one that stays open for stableMs.
    h.sock().drop(1006);
    h.runTimer();
    h.sock().open();
    expect(h.timers.map((t) => t.ms)).toEqual([5000]);
    h.runTimer();
    h.sock().drop(1001);
    expect(h.timers[0].ms).toBe(250);
  });

  it('marks a gap on an unknown position and continues live without since', () => {
    const gaps = [];
    h = harness({ onGap: (r) => gaps.push(r) });
    h.feed.start();
    h.sock().open();
    h.sock().frame({ id: 'u1' });
    h.sock().drop(1006);
    h.runTimer();
    expect(h.sock().url).toMatch(/since=u1$/);
    h.sock().open();
    h.sock().drop(4404, 'unknown position; reconnect without since');
    expect(gaps).toEqual(['unknown position; reconnect without since']);
    expect(h.timers[0].ms).toBe(0);
    h.runTimer();
    expect(h.sock().url).toBe('ws://h:1/ws/v1/messages/');
    h.sock().open();
    h.sock().frame({ id: 'u2' });
    h.runFrame();
    expect(h.batches.flatMap((b) => b.ids)).toEqual(['u1', 'u2']);
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

describe('LiveFeed render pacing', () => {
  it('hands at most one batch to the view per minInterval, none lost', () => {
    let t = 0;
    const h = harness({ minInterval: 100, now: () => t });
    h.feed.start();
    h.sock().open();
    h.sock().frame({ id: 'a' });
    expect(h.frames.length).toBe(1); // the first batch goes at the next frame
    h.runFrame();
    expect(h.batches.map((b) => b.ids)).toEqual([['a']]);
    t = 10;
    h.sock().frame({ id: 'b' });
    h.sock().frame({ id: 'c' });
    expect(h.frames.length).toBe(0); // too soon: a timer waits for the rest of the interval
    const wait = h.timers.find((x) => x.ms === 90);
    expect(wait).toBeTruthy();
    t = 100;
    h.timers.splice(h.timers.indexOf(wait), 1)[0].fn();
    h.runFrame();
    expect(h.batches.map((b) => b.ids)).toEqual([['a'], ['b', 'c']]);
  });

  it('stop drops a waiting batch timer', () => {
    let t = 0;
    const h = harness({ minInterval: 100, now: () => t });
    h.feed.start();
    h.sock().open();
    h.sock().frame({ id: 'a' });
    h.runFrame();
    h.sock().frame({ id: 'b' });
    expect(h.timers.some((x) => x.ms === 100)).toBe(true);
    h.feed.stop();
    expect(h.timers.some((x) => x.ms === 100)).toBe(false);
  });
});
