// The page's side of the live feeds: feedworker.js runs them in one worker
// shared by every channel of the page, and this hands their batches to the
// view once per animation frame. Where a worker cannot run (no Worker, or
// its script failed to load before it said anything) the feeds run on the
// page itself (LiveFeed), with the same callbacks.
import { LiveFeed, withSince } from './livefeed.js';

const defaultSchedule = (fn) =>
  typeof requestAnimationFrame === 'function' ? requestAnimationFrame(fn) : setTimeout(fn, 16);

export class FeedHost {
  // makeWorker: () => Worker, or null for feeds on the page.
  constructor({ makeWorker = defaultWorker, schedule = defaultSchedule, feedOptions = {} } = {}) {
    this.makeWorker = makeWorker;
    this.schedule = schedule;
    this.feedOptions = feedOptions;
    this.worker = null;
    this.heard = false; // the worker has posted something: it runs
    this.failed = false;
    this.nextId = 1;
    this.feeds = new Map(); // id -> feed (WorkerFeed or LiveFeed)
    this.due = []; // [feed, frames, skipped] waiting for the next frame
    this.drawScheduled = false;
  }

  ensureWorker() {
    if (this.worker || this.failed || !this.makeWorker) return this.worker;
    try {
      this.worker = this.makeWorker();
    } catch {
      this.worker = null;
    }
    if (!this.worker) {
      this.failed = true;
      return null;
    }
    this.worker.onmessage = (ev) => this.receive(ev.data);
    this.worker.onerror = () => {
      if (!this.heard) this.fallBack();
    };
    return this.worker;
  }

  // The worker never ran: every feed it was to hold starts on the page.
  fallBack() {
    this.failed = true;
    const w = this.worker;
    this.worker = null;
    if (w) {
      w.onmessage = w.onerror = null;
      try {
        w.terminate();
      } catch {
        /* gone already */
      }
    }
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    for (const feed of feeds) {
      feed.local = this.local(feed.spec);
      if (feed.running) feed.local.start();
    }
  }

  local(spec) {
    return new LiveFeed({ ...this.feedOptions, ...spec, url: (since) => withSince(spec.url, since) });
  }

  // spec: { transport, url (without ?since), onBatch, onStatus, onGap }.
  // Returns a feed with start(), stop() and kick().
  open(spec) {
    if (!this.ensureWorker()) return this.local(spec);
    const feed = new WorkerFeed(this, this.nextId++, spec);
    this.feeds.set(feed.id, feed);
    return feed;
  }

  receive(msg) {
    this.heard = true;
    const feed = msg && this.feeds.get(msg.id);
    if (!feed || !feed.running) return;
    if (msg.type === 'batch') {
      this.due.push([feed, msg.frames, msg.skipped]);
      if (!this.drawScheduled) {
        this.drawScheduled = true;
        this.schedule(() => this.draw());
      }
    } else if (msg.type === 'status') {
      feed.spec.onStatus(msg.status, msg.detail);
    } else if (msg.type === 'gap') {
      // What arrived before the gap is drawn before it.
      this.draw();
      feed.spec.onGap(msg.reason);
    }
  }

  draw() {
    this.drawScheduled = false;
    const due = this.due;
    this.due = [];
    for (const [feed, frames, skipped] of due) if (feed.running) feed.spec.onBatch(frames, skipped);
  }

  post(msg) {
    if (this.worker) this.worker.postMessage(msg);
  }

  forget(id) {
    this.feeds.delete(id);
  }

  terminate() {
    for (const feed of [...this.feeds.values()]) feed.stop();
    if (this.worker) {
      this.worker.onmessage = this.worker.onerror = null;
      this.worker.terminate();
    }
    this.worker = null;
  }
}

// One feed held by the worker (or, once the worker failed, by a LiveFeed on
// the page: `local`).
class WorkerFeed {
  constructor(host, id, spec) {
    this.host = host;
    this.id = id;
    this.spec = spec;
    this.running = false;
    this.local = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    if (this.local) this.local.start();
    else this.host.post({ op: 'open', id: this.id, transport: this.spec.transport, url: this.spec.url });
  }

  stop() {
    if (!this.running) return;
    this.running = false;
    if (this.local) {
      this.local.stop();
      return;
    }
    this.host.post({ op: 'close', id: this.id });
    this.host.forget(this.id);
    this.spec.onStatus('offline', 'stopped');
  }

  kick() {
    if (!this.running) return;
    if (this.local) this.local.kick();
    else this.host.post({ op: 'kick' });
  }
}

function defaultWorker() {
  if (typeof Worker !== 'function') return null;
  return new Worker(new URL('./feedworker.js', import.meta.url), { type: 'module' });
}
