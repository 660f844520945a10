import { describe, it, expect } from 'vitest';
import { authHeaders, loadCredentials, saveCredentials } from './credentials.js';
import { buildRequest } from './openapi.js';

function memory() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

describe('credentials', () => {
  it('become the header of their kind', () => {
    expect(authHeaders({ kind: 'key', value: ' k-123 ' })).toEqual({ 'X-API-Key': 'k-123' });
    expect(authHeaders({ kind: 'token', value: 'eyJ.a.b' })).toEqual({ Authorization: 'Bearer eyJ.a.b' });
    expect(authHeaders({ kind: 'token', value: 'Bearer eyJ.a.b' })).toEqual({ Authorization: 'Bearer eyJ.a.b' });
    expect(authHeaders({ kind: 'none', value: 'x' })).toEqual({});
    expect(authHeaders({ kind: 'key', value: '  ' })).toEqual({});
    expect(authHeaders(null)).toEqual({});
  });

  it('are kept for the tab and forgotten when none', () => {
    const s = memory();
    expect(loadCredentials(s)).toEqual({ kind: 'none', value: '' });
    saveCredentials({ kind: 'token', value: 't' }, s);
    expect(loadCredentials(s)).toEqual({ kind: 'token', value: 't' });
    saveCredentials({ kind: 'none', value: 't' }, s);
    expect(s.m.size).toBe(0);
    s.setItem('fpesa.credentials', '{not json');
    expect(loadCredentials(s)).toEqual({ kind: 'none', value: '' });
    s.setItem('fpesa.credentials', JSON.stringify({ kind: 'root', value: 'x' }));
    expect(loadCredentials(s)).toEqual({ kind: 'none', value: '' });
  });

  it('travel with a built request beside its content type', () => {
    const op = { method: 'POST', path: '/sec/', pathParams: [], queryParams: [], hasBody: true, bodyRequired: true, bodyFields: [], bodySchema: { type: 'object' }, contentType: 'application/json' };
    const req = buildRequest(op, '/api/v1', { bodyText: '{"a":1}', headers: authHeaders({ kind: 'key', value: 'k' }) });
    expect(req.headers).toEqual({ 'X-API-Key': 'k', 'Content-Type': 'application/json' });
    const get = buildRequest({ ...op, method: 'GET', hasBody: false }, '/api/v1', {});
    expect(get.headers).toEqual({});
  });
});
