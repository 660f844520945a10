import { describe, it, expect } from 'vitest';
import { FeedHost } from './feedhost.js';
import { serveFeeds } from './feedworker.js';
import { FakeSocket } from './fakesocket.js';

// A worker and its scope joined by hand: what the page posts reaches the
// scope served by serveFeeds, and what the scope posts reaches the page,
// each delivered when the test says (as the event loop would).
function pair() {
  const toWorker = [];
  const toPage = [];
  const worker = {
    terminated: false,
    postMessage: (m) => toWorker.push(structuredClone(m)),
    terminate() {
      this.terminated = true;
    },
  };
  const scope = { postMessage: (m) => toPage.push(structuredClone(m)) };
  const workerTasks = [];
  const feeds = serveFeeds(scope, {
    WebSocketImpl: FakeSocket,
    schedule: (fn) => workerTasks.push(fn),
    setTimer: (fn) => workerTasks.push(fn),
    clearTimer: () => {},
    minInterval: 0,
  });
  const deliver = () => {
    for (let n = 0; n < 10 && (toWorker.length || toPage.length || workerTasks.length); n++) {
      for (const m of toWorker.splice(0)) scope.onmessage({ data: m });
      for (const f of workerTasks.splice(0)) f();
      for (const m of toPage.splice(0)) worker.onmessage({ data: m });
    }
  };
  return { worker, feeds, deliver };
}

function spec(over = {}) {
  const seen = { batches: [], statuses: [], gaps: [] };
  return {
    seen,
    spec: {
      transport: 'ws',
      url: 'ws://h:1/ws/v1/messages/',
      onBatch: (frames, skipped) => seen.batches.push({ ids: frames.map((f) => f.id), skipped }),
      onStatus: (s, d) => seen.statuses.push(s),
      onGap: (r) => seen.gaps.push(r),
      ...over,
    },
  };
}

describe('FeedHost with a worker', () => {
  it('runs the feed in the worker and draws its batches in the next frame', () => {
    FakeSocket.all = [];
    const { worker, feeds, deliver } = pair();
    const frames = [];
    const host = new FeedHost({ makeWorker: () => worker, schedule: (fn) => frames.push(fn) });
    const { seen, spec: s } = spec();
    const feed = host.open(s);
    feed.start();
    deliver();
    expect(feeds.size).toBe(1);
    expect(FakeSocket.all.map((x) => x.url)).toEqual(['ws://h:1/ws/v1/messages/']);
    FakeSocket.all[0].onopen({});
    for (let i = 0; i < 5; i++) FakeSocket.all[0].frame({ id: 'm' + i, data: { i } });
    FakeSocket.all[0].frame({ id: 'm4', data: { i: 4 } }); // a replay: dropped in the worker
    deliver();
    expect(seen.statuses).toContain('connected');
    expect(seen.batches).toEqual([]); // not before the page's frame
    frames.splice(0).forEach((f) => f());
    expect(seen.batches).toEqual([{ ids: ['m0', 'm1', 'm2', 'm3', 'm4'], skipped: 0 }]);
    // A reconnect resumes from the last id the worker saw.
    FakeSocket.all[0].onclose({ code: 1006, reason: '' });
    deliver();
    deliver();
    expect(FakeSocket.all[FakeSocket.all.length - 1].url).toBe('ws://h:1/ws/v1/messages/?since=m4');
    // A gap is passed on after what came before it is drawn.
    FakeSocket.all[FakeSocket.all.length - 1].frame({ id: 'm5', data: {} });
    FakeSocket.all[FakeSocket.all.length - 1].onclose({ code: 4404, reason: 'unknown position' });
    deliver();
    expect(seen.gaps).toEqual(['unknown position']);
    expect(seen.batches[seen.batches.length - 1].ids).toEqual(['m5']);
    // Stopped: the worker closes the socket and forgets the feed.
    feed.stop();
    deliver();
    expect(feeds.size).toBe(0);
    expect(FakeSocket.all[FakeSocket.all.length - 1].closed).toBe(true);
    expect(seen.statuses[seen.statuses.length - 1]).toBe('offline');
    host.terminate();
    expect(worker.terminated).toBe(true);
  });

  it('keeps the feeds of several channels apart in one worker', () => {
    FakeSocket.all = [];
    const { worker, deliver } = pair();
    const frames = [];
    const host = new FeedHost({ makeWorker: () => worker, schedule: (fn) => frames.push(fn) });
    const a = spec({ url: 'ws://h:1/ws/v1/a' });
    const b = spec({ url: 'ws://h:1/ws/v1/b' });
    host.open(a.spec).start();
    host.open(b.spec).start();
    deliver();
    expect(FakeSocket.all.map((x) => x.url)).toEqual(['ws://h:1/ws/v1/a', 'ws://h:1/ws/v1/b']);
    FakeSocket.all[1].frame({ id: 'b1' });
    FakeSocket.all[0].frame({ id: 'a1' });
    deliver();
    frames.splice(0).forEach((f) => f());
    expect(a.seen.batches).toEqual([{ ids: ['a1'], skipped: 0 }]);
    expect(b.seen.batches).toEqual([{ ids: ['b1'], skipped: 0 }]);
  });
});

describe('FeedHost without a worker', () => {
  it('runs the feed on the page when there is no Worker', () => {
    FakeSocket.all = [];
    const frames = [];
    const host = new FeedHost({
      makeWorker: () => null,
      feedOptions: { WebSocketImpl: FakeSocket, schedule: (fn) => frames.push(fn), minInterval: 0 },
    });
    const { seen, spec: s } = spec();
    const feed = host.open(s);
    feed.start();
    expect(FakeSocket.all.map((x) => x.url)).toEqual(['ws://h:1/ws/v1/messages/']);
    FakeSocket.all[0].frame({ id: 'x1' });
    frames.splice(0).forEach((f) => f());
    expect(seen.batches).toEqual([{ ids: ['x1'], skipped: 0 }]);
    feed.stop();
    expect(FakeSocket.all[0].closed).toBe(true);
  });

  it('moves the feeds onto the page when the worker fails before it says anything', () => {
    FakeSocket.all = [];
    const posted = [];
    const worker = { postMessage: (m) => posted.push(m), terminate() { this.terminated = true; } };
    const frames = [];
    const host = new FeedHost({
      makeWorker: () => worker,
      feedOptions: { WebSocketImpl: FakeSocket, schedule: (fn) => frames.push(fn), minInterval: 0 },
    });
    const { seen, spec: s } = spec();
    const feed = host.open(s);
    feed.start();
    expect(posted.map((m) => m.op)).toEqual(['open']);
    expect(FakeSocket.all.length).toBe(0);
    worker.onerror({ message: 'script failed to load' });
    expect(worker.terminated).toBe(true);
    expect(FakeSocket.all.map((x) => x.url)).toEqual(['ws://h:1/ws/v1/messages/']);
    FakeSocket.all[0].frame({ id: 'y1' });
    frames.splice(0).forEach((f) => f());
    expect(seen.batches).toEqual([{ ids: ['y1'], skipped: 0 }]);
    // Later feeds start on the page at once.
    const other = spec({ url: 'ws://h:1/ws/v1/other' });
    host.open(other.spec).start();
    expect(FakeSocket.all[1].url).toBe('ws://h:1/ws/v1/other');
    feed.stop();
    expect(FakeSocket.all[0].closed).toBe(true);
  });
});
