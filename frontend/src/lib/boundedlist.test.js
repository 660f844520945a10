import { describe, it, expect } from 'vitest';
import { BoundedList } from './boundedlist.js';

describe('BoundedList', () => {
  it('shows newest first and keeps at most `limit`', () => {
    const l = new BoundedList(3);
    l.pushBatch([1, 2]);
    expect(l.items).toEqual([2, 1]);
    l.pushBatch([3, 4]);
    expect(l.items).toEqual([4, 3, 2]);
    expect(l.total).toBe(4);
    expect(l.dropped).toBe(1);
  });

  it('takes a batch larger than the limit', () => {
    const l = new BoundedList(200);
    const batch = Array.from({ length: 1000 }, (_, i) => i);
    l.pushBatch(batch);
    expect(l.items.length).toBe(200);
    expect(l.items[0]).toBe(999);
    expect(l.items[199]).toBe(800);
    expect(l.total).toBe(1000);
  });

  it('replaces the array on change (one reactive update per batch) and not otherwise', () => {
    const l = new BoundedList(5);
    const a = l.pushBatch([1]);
    const b = l.pushBatch([]);
    expect(b).toBe(a);
    const c = l.pushBatch([2]);
    expect(c).not.toBe(a);
    expect(a).toEqual([1]);
  });

  it('counts skipped entries and clears', () => {
    const l = new BoundedList(2);
    l.pushBatch([1], 9);
    expect(l.total).toBe(10);
    l.clear();
    expect(l.total).toBe(0);
    expect(l.items).toEqual([]);
    expect(() => new BoundedList(0)).toThrow(RangeError);
  });
});
