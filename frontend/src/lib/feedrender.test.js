import { describe, it, expect } from 'vitest';
import { FeedRenderer, feedText, FEED_LINES } from './feedrender.js';

function setup(opts = {}) {
  const list = document.createElement('ol');
  const frames = [];
  const clock = { t: 0 };
  const r = new FeedRenderer(list, { schedule: (fn) => frames.push(fn), now: () => clock.t, ...opts });
  const ids = () => [...list.children].map((li) => li.dataset.id || li.dataset.kind);
  const runFrames = () => {
    for (let n = 0; n < 50 && frames.length; n++) frames.splice(0).forEach((f) => f());
  };
  return { list, r, clock, ids, runFrames };
}
const msgs = (from, to) => {
  const out = [];
  for (let i = from; i < to; i++) out.push({ id: 'm' + i, received_at: '2024-01-01T00:00:00Z', data: { i } });
  return out;
};

describe('FeedRenderer', () => {
  it('keeps the newest `window` lines in the document while live, and `limit` in all', () => {
    const { r, clock, ids } = setup({ limit: 50, window: 8, drawRate: 30, drawBurst: 8 });
    for (let i = 0; i < 60; i += 2) {
      clock.t += 100;
      r.push(msgs(i, i + 2));
    }
    expect(ids()).toEqual(['m59', 'm58', 'm57', 'm56', 'm55', 'm54', 'm53', 'm52']);
    expect(r.shown).toBe(50);
  });

  it('draws a fast stream\'s batches as their newest items and a burst line, a catch-up after a quiet time whole', () => {
    const { r, clock, ids, list } = setup({ window: 8, drawRate: 30, drawBurst: 8 });
    clock.t = 1000;
    r.push(msgs(0, 2)); // a catch-up in two batches: both whole
    clock.t += 100;
    r.push(msgs(2, 6));
    expect(ids()).toEqual(['m5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    // The budget left (8 - 2 + 3, capped at 8, - 4 + 3 = 7): the newest
    // seven and a line for the other three.
    clock.t += 100;
    r.push(msgs(6, 16));
    expect(ids()).toEqual(['m15', 'm14', 'm13', 'm12', 'm11', 'm10', 'm9', 'burst']);
    expect(list.children[7].textContent).toContain('3 earlier messages of this burst not drawn');
    // A steady fast stream draws at the rate: 3 per tenth of a second.
    clock.t += 100;
    r.push(msgs(16, 26));
    expect(ids().slice(0, 4)).toEqual(['m25', 'm24', 'm23', 'burst']);
    // After a quiet second the budget is full again: up to the window.
    clock.t += 1000;
    r.push(msgs(26, 46));
    expect(ids()).toEqual(['m45', 'm44', 'm43', 'm42', 'm41', 'm40', 'm39', 'm38']);
    expect(r.shown).toBe(6 + 8 + 4 + 9);
  });

  it('fills in the whole list below while held, and holds still', () => {
    const { r, clock, ids, runFrames } = setup({ limit: 30, window: 5, fillStep: 4 });
    for (let i = 0; i < 30; i++) {
      clock.t += 1000;
      r.push(msgs(i, i + 1));
    }
    expect(ids().length).toBe(5);
    r.hold(true);
    runFrames();
    expect(ids().length).toBe(30);
    expect(ids()[0]).toBe('m29');
    expect(ids()[29]).toBe('m0');
    r.push(msgs(30, 33));
    r.marker('gap here', 'gap');
    r.push(msgs(33, 34));
    expect(ids()[0]).toBe('m29'); // nothing moved
    expect(r.heldCount).toBe(4);
    // Released: the held frames at the top in order, the list back to its window.
    expect(r.release()).toBe(4);
    r.hold(false);
    expect(ids()).toEqual(['m33', 'gap', 'm32', 'm31', 'm30']);
    expect(r.shown).toBe(30);
  });

  it('cuts a long message to its first lines in the feed', () => {
    const data = {};
    for (let i = 0; i < 40; i++) data['k' + i] = i;
    const text = feedText(data);
    const lines = text.split('\n');
    expect(lines.length).toBe(FEED_LINES + 1);
    expect(lines[FEED_LINES]).toBe(`… ${42 - FEED_LINES} more lines`);
    expect(feedText({ a: 1 })).toBe('{\n  "a": 1\n}');
  });
});
