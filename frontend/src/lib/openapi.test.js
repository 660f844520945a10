import { describe, it, expect } from 'vitest';
import { operations, skeleton, buildRequest, errorTarget, apiBase, withField, fieldValue } from './openapi.js';

// The shape the mapper generates from endpoints.yaml.
const doc = {
  openapi: '3.1.0',
  info: { title: 'fpesa', version: '1' },
  paths: {
    '/messages/': {
      post: {
        operationId: 'messages_POST',
        summary: 'Accept a message',
        'x-fpesa-mode': 'publish',
        parameters: [],
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
      },
      get: {
        operationId: 'messages_GET',
        summary: 'Stored messages',
        'x-fpesa-mode': 'rpc',
        parameters: [
          { name: 'limit', in: 'query', required: false, schema: { type: 'string', pattern: '^[0-9]+$' } },
          { name: 'before', in: 'query', required: false, schema: { type: 'string' } },
        ],
      },
    },
    '/echo/{word}': {
      post: {
        summary: 'Echo',
        'x-fpesa-mode': 'rpc',
        parameters: [{ name: 'word', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['name'],
                properties: {
                  name: { type: 'string' },
                  count: { type: 'integer', minimum: 1 },
                  tags: { type: 'array', items: { type: 'string' } },
                  kind: { enum: ['a', 'b'] },
                  nested: { $ref: '#/components/schemas/Nested' },
                },
              },
            },
          },
        },
      },
    },
    '/health': { get: { summary: 'Broker state', responses: { 200: { description: 'OK' } } } },
  },
  components: { schemas: { Nested: { type: 'object', properties: { on: { type: 'boolean', default: true } } } } },
};

describe('operations()', () => {
  const ops = operations(doc);

  it('makes one form per operation, configured endpoints first', () => {
    expect(ops.map((o) => o.method + ' ' + o.path)).toEqual([
      'POST /messages/',
      'GET /messages/',
      'POST /echo/{word}',
      'GET /health',
    ]);
  });

  it('reads path and query parameters with their schemas', () => {
    const get = ops[1];
    expect(get.queryParams.map((p) => p.name)).toEqual(['limit', 'before']);
    expect(get.queryParams[0].pattern).toBe('^[0-9]+$');
    expect(get.pathParams).toEqual([]);
    expect(get.hasBody).toBe(false);
    const echo = ops[2];
    expect(echo.pathParams.map((p) => p.name)).toEqual(['word']);
    expect(echo.pathParams[0].required).toBe(true);
  });

  it('pre-fills the body from the schema', () => {
    expect(ops[0].bodyExample).toEqual({});
    expect(ops[2].bodyExample).toEqual({ name: '', count: 1, tags: [], kind: 'a', nested: { on: true } });
    expect(ops[2].bodyFields.map((f) => [f.name, f.type, f.required])).toEqual([
      ['name', 'string', true],
      ['count', 'integer', false],
      ['tags', 'array', false],
      ['kind', 'any', false],
      ['nested', 'object', false],
    ]);
  });

  it('picks up an endpoint it has never seen', () => {
    const more = structuredClone(doc);
    more.paths['/timer/{id}'] = {
      put: {
        'x-fpesa-mode': 'publish',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { at: { type: 'string', example: 'noon' } } } } } },
      },
    };
    const found = operations(more).find((o) => o.path === '/timer/{id}');
    expect(found.method).toBe('PUT');
    expect(found.bodyExample).toEqual({ at: 'noon' });
  });

  it('adds inputs for template parameters the document forgot to declare', () => {
    const d = { paths: { '/a/{x}/b/{y}': { delete: { parameters: [{ name: 'x', in: 'path' }] } } } };
    expect(operations(d)[0].pathParams.map((p) => p.name)).toEqual(['x', 'y']);
  });

  it('refuses something that is not an OpenAPI document', () => {
    expect(() => operations({ hello: 1 })).toThrow(/paths/);
    expect(() => operations(null)).toThrow();
  });
});

describe('skeleton()', () => {
  it('prefers example, default, const, enum', () => {
    expect(skeleton({ type: 'string', example: 'x', default: 'y' })).toBe('x');
    expect(skeleton({ type: 'string', examples: ['e1'] })).toBe('e1');
    expect(skeleton({ type: 'integer', default: 7 })).toBe(7);
    expect(skeleton({ const: 3 })).toBe(3);
    expect(skeleton({ enum: ['z', 'w'] })).toBe('z');
  });
  it('builds from types and combinators', () => {
    expect(skeleton({ type: ['null', 'number'] })).toBe(0);
    expect(skeleton({ type: 'array', minItems: 2, items: { type: 'boolean' } })).toEqual([false, false]);
    expect(skeleton({ anyOf: [{ type: 'string' }, { type: 'integer' }] })).toBe('');
    expect(skeleton({ allOf: [{ properties: { a: { type: 'string' } } }, { properties: { b: { type: 'null' } } }] })).toEqual({ a: '', b: null });
  });
});

describe('buildRequest()', () => {
  const ops = operations(doc);
  it('fills path parameters and leaves out empty query values', () => {
    const r = buildRequest(ops[2], '/api/v1', { pathValues: { word: 'a b/c' }, bodyText: '{"name":"x"}' });
    expect(r.url).toBe('/api/v1/echo/a%20b%2Fc');
    expect(r.headers['Content-Type']).toBe('application/json');
    expect(r.body).toBe('{"name":"x"}');
    const g = buildRequest(ops[1], '/api/v1', { queryValues: { limit: '5', before: '' } });
    expect(g.url).toBe('/api/v1/messages/?limit=5');
    expect(g.body).toBeUndefined();
  });
  it('names the field that stops a request', () => {
    expect(() => buildRequest(ops[2], '', { pathValues: {}, bodyText: '{}' })).toThrow(/word is required/);
    try {
      buildRequest(ops[0], '', { bodyText: '{nope' });
      expect.unreachable();
    } catch (e) {
      expect(e.field).toEqual({ where: 'body', name: null });
    }
  });
  it('finds the API base next to the document', () => {
    expect(apiBase(doc, 'http://h:1/api/v1/openapi.json')).toBe('http://h:1/api/v1');
    expect(apiBase({ ...doc, servers: [{ url: '/v2/' }] }, 'http://h:1/api/v1/openapi.json')).toBe('http://h:1/v2');
  });
});

describe('errorTarget()', () => {
  const ops = operations(doc);
  it('puts a body error next to the property it names', () => {
    const t = errorTarget(ops[2], { code: 400, description: '/name: type: expected string', path: '/name', keyword: 'type', in: 'body' });
    expect(t).toMatchObject({ where: 'body', name: 'name', message: '/name: type: expected string' });
    expect(errorTarget(ops[2], { code: 400, description: '/nested/on: type', path: '/nested/on' })).toMatchObject({ where: 'body', name: 'nested' });
  });
  it('puts a query error next to the parameter', () => {
    const t = errorTarget(ops[1], { code: 400, description: '/limit: pattern: does not match', path: '/limit', keyword: 'pattern', in: 'query' });
    expect(t).toMatchObject({ where: 'query', name: 'limit' });
    // Without "in" or "path", the description's leading pointer is used.
    expect(errorTarget(ops[1], { code: 400, description: '/limit: pattern' })).toMatchObject({ where: 'query', name: 'limit' });
  });
  it('reads where the problem is from the description when "in" is absent', () => {
    expect(errorTarget(ops[2], { code: 400, description: 'body /name: type: expected string', path: '/name', keyword: 'type' })).toMatchObject({ where: 'body', name: 'name' });
    expect(errorTarget(ops[1], { code: 400, description: 'query /limit: pattern: no match', path: '/limit', keyword: 'pattern' })).toMatchObject({ where: 'query', name: 'limit' });
    expect(errorTarget(ops[1], { code: 400, description: 'query /limit: pattern: no match' })).toMatchObject({ where: 'query', name: 'limit', ptr: '/limit' });
    expect(errorTarget(ops[0], { code: 400, description: 'body (root): type: expected object', path: '', keyword: 'type' })).toMatchObject({ where: 'body', name: null });
  });

  it('puts errors about the whole body next to the editor', () => {
    expect(errorTarget(ops[0], { code: 400, description: 'type: expected object', path: '' })).toMatchObject({ where: 'body', name: null });
    expect(errorTarget(ops[0], { code: 413, description: 'body too large' })).toMatchObject({ where: 'body', name: null });
    expect(errorTarget(ops[3], { code: 503, description: 'broker unavailable' })).toMatchObject({ where: 'form', name: null });
  });
});

describe('body field inputs', () => {
  it('reads and writes one property of the JSON text, typed', () => {
    const f = operations(doc)[2].bodyFields;
    let t = '{"name": "a"}';
    expect(fieldValue(t, 'name')).toBe('a');
    t = withField(t, f[1], '5');
    expect(JSON.parse(t)).toEqual({ name: 'a', count: 5 });
    t = withField(t, f[0], '5');
    expect(JSON.parse(t)).toEqual({ name: '5', count: 5 });
    expect(withField('[1]', f[0], 'x')).toBeNull();
    expect(fieldValue('{bad', 'name')).toBe('');
  });
});
