import { describe, it, expect } from 'vitest';
import { CursorPager, queryString } from './pager.js';

// A fake server over ids 100..1 (newest first) with keyset cursors.
function server(total) {
  const all = Array.from({ length: total }, (_, i) => total - i);
  return (q) => {
    const limit = Number(q.limit);
    const before = q.before === undefined ? Infinity : Number(q.before);
    const page = all.filter((id) => id < before).slice(0, limit);
    const more = page.length === limit && all.some((id) => id < page[page.length - 1]);
    return { messages: page, next: more ? String(page[page.length - 1]) : null };
  };
}

describe('CursorPager', () => {
  it('walks older and back newer through the same pages', () => {
    const get = server(25);
    const p = new CursorPager(10);
    const seen = [];
    let r = get(p.query());
    p.loaded(r);
    seen.push(r.messages);
    expect(p.query()).toEqual({ limit: '10' });
    expect(p.canNewer).toBe(false);
    expect(p.canOlder).toBe(true);
    while (p.older()) {
      r = get(p.query());
      p.loaded(r);
      seen.push(r.messages);
    }
    expect(seen.map((s) => s.length)).toEqual([10, 10, 5]);
    expect(seen.flat()).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    expect(p.pageNumber).toBe(3);
    expect(p.canOlder).toBe(false);

    expect(p.newer()).toBe(true);
    r = get(p.query());
    p.loaded(r);
    expect(r.messages).toEqual(seen[1]);
    expect(p.newer()).toBe(true);
    r = get(p.query());
    p.loaded(r);
    expect(r.messages).toEqual(seen[0]);
    expect(p.query()).toEqual({ limit: '10' });
    expect(p.canNewer).toBe(false);
    expect(p.newer()).toBe(false);
  });

  it('does not go older before a page has said there is one', () => {
    const p = new CursorPager(5);
    expect(p.older()).toBe(false);
    p.loaded({ messages: [], next: null });
    expect(p.older()).toBe(false);
    p.loaded({ messages: [1], next: '' });
    expect(p.canOlder).toBe(false);
  });

  it('starts over at the newest page when the page size changes', () => {
    const p = new CursorPager(5);
    p.loaded({ next: 'c1' });
    p.older();
    p.loaded({ next: 'c2' });
    p.older();
    expect(p.query()).toEqual({ limit: '5', before: 'c2' });
    p.setPageSize(50);
    expect(p.query()).toEqual({ limit: '50' });
    expect(p.canNewer).toBe(false);
    expect(() => p.setPageSize(0)).toThrow(RangeError);
  });

  it('keeps newer pages stable while new messages arrive', () => {
    // New messages land at the top; the cursor stack still brings back the same pages.
    const p = new CursorPager(2);
    p.loaded({ next: 'x8' });
    p.older();
    expect(p.query().before).toBe('x8');
    p.loaded({ next: 'x6' });
    p.older();
    p.newer();
    expect(p.query().before).toBe('x8');
  });
});

describe('queryString', () => {
  it('encodes and skips empty values', () => {
    expect(queryString({ limit: '5', before: 'a/b c', x: '', y: null })).toBe('?limit=5&before=a%2Fb%20c');
    expect(queryString({})).toBe('');
  });
});

import { positionOf, restorePosition } from './pager.js';

describe('pager position in the URL', () => {
  it('round-trips through positionOf and restorePosition at any depth', () => {
    const get = server(45);
    const p = new CursorPager(10);
    p.loaded(get(p.query()));
    expect(positionOf(p)).toEqual({ before: '', trail: '' });
    const positions = [];
    while (p.older()) {
      positions.push([positionOf(p), p.pageNumber, p.query()]);
      p.loaded(get(p.query()));
    }
    expect(positions.map((x) => x[1])).toEqual([2, 3, 4, 5]);
    for (const [pos, page, query] of positions) {
      const q = new CursorPager(10);
      restorePosition(q, pos);
      expect(q.pageNumber).toBe(page);
      expect(q.query()).toEqual(query);
    }
    // From a restored deep page, Newer walks back to the first.
    const q = new CursorPager(10);
    restorePosition(q, positions[3][0]);
    const seen = [];
    while (q.newer()) seen.push(q.query().before || 'first');
    expect(seen).toEqual([positions[2][2].before, positions[1][2].before, positions[0][2].before, 'first']);
  });
});
