import { describe, it, expect } from 'vitest';
import { uploadTargets, acceptOf, resultUrl, uploadFile } from './upload.js';

const doc = {
  openapi: '3.1.0',
  info: { title: 'images', version: '1' },
  paths: {
    '/image': {
      post: {
        'x-fpesa-mode': 'rpc',
        summary: 'Upload',
        requestBody: {
          content: {
            'image/png': { schema: {} },
            'image/jpeg': { schema: {} },
            'multipart/form-data': { schema: { type: 'object', properties: { image: { type: 'string', format: 'binary' } } } },
          },
        },
      },
    },
    '/image/{id}': { get: { 'x-fpesa-mode': 'rpc' } },
    '/messages/': { post: { 'x-fpesa-mode': 'publish', requestBody: { content: { 'application/json': { schema: {} } } } } },
    '/form': { post: { requestBody: { content: { 'application/x-www-form-urlencoded': { schema: {} } } } } },
  },
};

describe('uploadTargets', () => {
  it('finds the routes that take a file, raw or in a form, and where their result is', () => {
    const t = uploadTargets(doc);
    expect(t).toHaveLength(1);
    expect(t[0]).toMatchObject({ method: 'POST', path: '/image', rawTypes: ['image/png', 'image/jpeg'], field: 'image', resultPath: '/image/{id}' });
    expect(acceptOf(t[0])).toBe('image/png,image/jpeg');
    expect(resultUrl('/api/v1', t[0], 'a b')).toBe('/api/v1/image/a%20b');
  });
});

describe('uploadFile', () => {
  it('sends a multipart form with the file and reports progress', async () => {
    const sent = [];
    class FakeXHR {
      constructor() {
        this.upload = {};
        this.headers = {};
      }
      open(m, u) {
        this.m = m;
        this.u = u;
      }
      setRequestHeader(k, v) {
        this.headers[k] = v;
      }
      send(body) {
        sent.push(this);
        this.body = body;
        this.upload.onprogress({ loaded: 5, total: 10, lengthComputable: true });
        this.status = 202;
        this.responseText = '{"id":"x1"}';
        this.onload();
      }
    }
    const [target] = uploadTargets(doc);
    const seen = [];
    const file = new File([new Uint8Array(10)], 'p.png', { type: 'image/png' });
    const r = await uploadFile('/api/v1', target, file, { XHR: FakeXHR, onProgress: (l, t) => seen.push([l, t]) });
    expect(r).toMatchObject({ status: 202, json: { id: 'x1' } });
    expect(sent[0].m).toBe('POST');
    expect(sent[0].u).toBe('/api/v1/image');
    expect(sent[0].body).toBeInstanceOf(FormData);
    expect(sent[0].body.get('image').name).toBe('p.png');
    expect(seen).toEqual([[5, 10]]);
  });
});
