// The live feeds' worker: the websockets (or event streams) of the live page
// live here, with their parsing, de-duplication and pacing (LiveFeed), so
// that a feed of 1,000 messages a second is ten posted batches a second on
// the page's main thread instead of a thousand message events.
//
// Messages in: { op: 'open', id, transport, url } (url without ?since),
// { op: 'kick' } (the browser came back online), { op: 'close', id }.
// Messages out, each with the feed's id: { type: 'batch', frames, skipped },
// { type: 'status', status, detail }, { type: 'gap', reason }.
import { LiveFeed, withSince } from './livefeed.js';

// Serves the feeds of one worker scope; exported for the unit tests, which
// hand it a fake scope and fake sockets.
export function serveFeeds(scope, options = {}) {
  const feeds = new Map();
  const post = (id, msg) => scope.postMessage({ id, ...msg });
  scope.onmessage = (ev) => {
    const m = ev.data || {};
    if (m.op === 'open' && !feeds.has(m.id)) {
      const feed = new LiveFeed({
        ...options,
        transport: m.transport,
        url: (since) => withSince(m.url, since),
        // Nothing is drawn here: a batch is posted as soon as it is due
        // (the page draws it in its next animation frame).
        schedule: options.schedule || ((fn) => setTimeout(fn, 0)),
        onBatch: (frames, skipped) => post(m.id, { type: 'batch', frames, skipped }),
        onStatus: (status, detail) => post(m.id, { type: 'status', status, detail }),
        onGap: (reason) => post(m.id, { type: 'gap', reason }),
      });
      feeds.set(m.id, feed);
      feed.start();
    } else if (m.op === 'close') {
      const feed = feeds.get(m.id);
      feeds.delete(m.id);
      if (feed) {
        feed.onStatus = feed.onBatch = feed.onGap = () => {};
        feed.stop();
      }
    } else if (m.op === 'kick') {
      for (const f of feeds.values()) f.kick();
    }
  };
  return feeds;
}

if (typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined' && self instanceof WorkerGlobalScope) {
  serveFeeds(self);
}
