import { describe, it, expect } from 'vitest';
import { problems } from './validate.js';

describe('problems', () => {
  const schema = {
    type: 'object',
    additionalProperties: false,
    required: ['hours', 'url'],
    properties: { hours: { type: 'integer', minimum: 0, maximum: 720 }, url: { type: 'string', pattern: '^https?://' } },
  };
  it('names the path and keyword of each problem', () => {
    const p = problems(schema, { hours: 721, extra: 1 });
    expect(p.map((x) => [x.path, x.keyword])).toEqual([
      ['/url', 'required'],
      ['/extra', 'additionalProperties'],
      ['/hours', 'maximum'],
    ]);
    expect(p[2].message).toBe('/hours: maximum: must be <= 720');
  });
  it('is empty for a valid value and for what it cannot check', () => {
    expect(problems(schema, { hours: 1, url: 'http://x' })).toEqual([]);
    expect(problems({ type: 'string', contentMediaType: 'application/json', format: 'binary' }, 'x')).toEqual([]);
    expect(problems(null, 5)).toEqual([]);
  });
});
