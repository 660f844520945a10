// A newest-first list that keeps at most `limit` entries on screen while
// counting everything it has seen. Older entries drop off the end; the
// total keeps growing so the view can say how many arrived.
export class BoundedList {
  constructor(limit = 200) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    this.limit = limit;
    this.items = [];
    this.total = 0;
  }

  // batch: entries in arrival order (oldest first); skipped: entries that
  // arrived but were never handed over (counted, not shown). Returns the new
  // items array (a fresh array, so a shallow ref sees one change per batch).
  pushBatch(batch, skipped = 0) {
    this.total += skipped;
    if (!batch.length) return this.items;
    this.total += batch.length;
    const take = batch.length > this.limit ? batch.slice(batch.length - this.limit) : batch;
    const head = [];
    for (let i = take.length - 1; i >= 0; i--) head.push(take[i]);
    const keep = Math.max(0, this.limit - head.length);
    this.items = head.concat(this.items.slice(0, keep));
    return this.items;
  }

  get dropped() {
    return this.total - this.items.length;
  }

  clear() {
    this.items = [];
    this.total = 0;
  }
}
