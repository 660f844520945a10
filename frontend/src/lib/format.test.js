import { describe, it, expect } from 'vitest';
import { messageTime, timeFromUuid7, timeOf } from './format.js';

describe('message times', () => {
  const id = '01a207aa-a2fc-7000-b80f-e3ed7e6ca73c'; // 0x01a207aaa2fc ms since 1970
  it('reads the millisecond time out of a UUIDv7', () => {
    expect(timeFromUuid7(id)).toBe(new Date(0x01a207aaa2fc).toISOString());
    expect(timeFromUuid7('5f0c1b9e-0000-4000-8000-000000000000')).toBeNull();
    expect(timeFromUuid7(undefined)).toBeNull();
  });
  it('prefers a precise received_at, else the id time, else what there is', () => {
    expect(messageTime({ id, received_at: '2026-11-23T09:09:13.084Z' })).toBe('2026-11-23T09:09:13.084Z');
    expect(messageTime({ id, received_at: '2026-11-23T09:09:13Z' })).toBe(timeFromUuid7(id));
    expect(messageTime({ id: 'x', received_at: '2026-11-23T09:09:13Z' })).toBe('2026-11-23T09:09:13Z');
    expect(messageTime({})).toBe('');
  });
  it('formats a time of day with milliseconds', () => {
    const d = new Date(2026, 0, 2, 3, 4, 5, 6);
    expect(timeOf(d.toISOString())).toBe('03:04:05.006');
    expect(timeOf('nonsense')).toBe('nonsense');
  });
});
