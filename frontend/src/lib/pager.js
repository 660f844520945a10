// Keyset pagination over GET /messages/?limit=N[&before=CURSOR].
// The server gives a `next` cursor for the older page; going back to newer
// pages uses a stack of the cursors that led to each page seen so far.
export class CursorPager {
  constructor(pageSize = 20) {
    this.pageSize = pageSize;
    this.reset();
  }

  reset() {
    this.cursor = null; // `before` of the page shown; null = newest page
    this.stack = []; // cursors of the newer pages, most recent last
    this.next = null; // cursor for the older page, from the last response
  }

  setPageSize(n) {
    const v = Number(n);
    if (!Number.isInteger(v) || v < 1) throw new RangeError('page size must be a positive integer');
    this.pageSize = v;
    this.reset();
  }

  // The query of the page to load now.
  query() {
    const q = { limit: String(this.pageSize) };
    if (this.cursor !== null) q.before = this.cursor;
    return q;
  }

  // Record the response of the page just loaded.
  loaded(response) {
    this.next = response && typeof response.next === 'string' && response.next ? response.next : null;
  }

  get canOlder() {
    return this.next !== null;
  }

  get canNewer() {
    return this.stack.length > 0;
  }

  get pageNumber() {
    return this.stack.length + 1;
  }

  older() {
    if (!this.canOlder) return false;
    this.stack.push(this.cursor);
    this.cursor = this.next;
    this.next = null;
    return true;
  }

  newer() {
    if (!this.canNewer) return false;
    this.cursor = this.stack.pop();
    this.next = null;
    return true;
  }

  newest() {
    this.reset();
  }
}

// The pager's position as URL query values ({ before, trail }), so that a
// page can be reloaded, bookmarked and reached with Back: before is the
// cursor of the page shown, trail the cursors of the newer pages after the
// first, joined with "~" (cursors never hold one).
export function positionOf(pager) {
  if (pager.cursor === null) return { before: '', trail: '' };
  return { before: pager.cursor, trail: pager.stack.slice(1).join('~') };
}

// Puts the pager at the position a URL query names (see positionOf).
export function restorePosition(pager, query = {}) {
  pager.reset();
  const before = typeof query.before === 'string' && query.before ? query.before : null;
  if (before === null) return;
  const trail = typeof query.trail === 'string' && query.trail ? query.trail.split('~').filter(Boolean) : [];
  pager.cursor = before;
  pager.stack = [null, ...trail];
}

export function queryString(q) {
  const parts = [];
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
  }
  return parts.length ? '?' + parts.join('&') : '';
}
