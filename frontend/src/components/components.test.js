import { describe, it, expect, vi, afterEach } from 'vitest';
import { mount, flushPromises } from '@vue/test-utils';
import Dev from './Dev.vue';
import Saved from './Saved.vue';
import Index from './Index.vue';

const doc = {
  openapi: '3.1.0',
  info: { title: 'fpesa', version: '1' },
  paths: {
    '/messages/': {
      post: {
        summary: 'Accept a message',
        'x-fpesa-mode': 'publish',
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
      },
      get: {
        summary: 'Stored messages',
        'x-fpesa-mode': 'rpc',
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'string', pattern: '^[0-9]+$' } }],
      },
    },
    '/people/{team}': {
      post: {
        summary: 'Add a person',
        'x-fpesa-mode': 'publish',
        parameters: [{ name: 'team', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          content: {
            'application/json': {
              schema: { type: 'object', required: ['name'], properties: { name: { type: 'string', example: 'Ada' }, age: { type: 'integer' } } },
            },
          },
        },
      },
    },
  },
};

function jsonResponse(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('Dev.vue', () => {
  it('builds one form per operation from the OpenAPI document', async () => {
    const fetch = vi.fn(async () => jsonResponse(200, doc));
    vi.stubGlobal('fetch', fetch);
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    expect(fetch.mock.calls[0][0]).toBe('/api/v1/openapi.json');
    const forms = w.findAll('article.op');
    expect(forms.map((f) => f.attributes('data-op'))).toEqual(['POST /messages/', 'GET /messages/', 'POST /people/{team}']);
    const people = forms[2];
    // Path parameter, body property inputs and a pre-filled editor, all labelled.
    const team = people.find('input[name="team"]');
    expect(people.find(`label[for="${team.attributes('id')}"]`).text()).toContain('team');
    expect(people.find('input[name="name"]').element.value).toBe('Ada');
    expect(JSON.parse(people.find('textarea').element.value)).toEqual({ name: 'Ada', age: 0 });
    expect(forms[1].find('input[name="limit"]').exists()).toBe(true);
    expect(forms[1].find('textarea').exists()).toBe(false);
  });

  it('sends the form and shows the server error next to the field it names', async () => {
    const calls = [];
    vi.stubGlobal('fetch', async (url, init = {}) => {
      calls.push([url, init]);
      if (url.endsWith('openapi.json')) return jsonResponse(200, doc);
      return jsonResponse(400, { error: { code: 400, description: '/name: type: expected string', path: '/name', keyword: 'type', in: 'body' } });
    });
    const w = mount(Dev, { props: { route: { name: 'dev', query: { openapi: 'http://other:9/openapi.json' } } } });
    await flushPromises();
    expect(calls[0][0]).toBe('http://other:9/openapi.json');
    const people = w.findAll('article.op')[2];
    await people.find('input[name="team"]').setValue('blue');
    await people.find('input[name="name"]').setValue('5');
    await people.find('textarea').setValue('{"name": 5}');
    await people.find('form').trigger('submit');
    await flushPromises();
    const [url, init] = calls[1];
    expect(url).toBe('http://other:9/people/blue');
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"name": 5}');
    const field = people.find('[data-field="body:name"]');
    expect(field.find('.field-error').text()).toBe('/name: type: expected string');
    expect(field.find('input').attributes('aria-invalid')).toBe('true');
    expect(people.find('[data-testid="status"]').text()).toContain('400');
    expect(people.find('[data-field="body"] .field-error').text()).toBe('');
  });

  it('refuses to send a missing path parameter and says which', async () => {
    const fetch = vi.fn(async () => jsonResponse(200, doc));
    vi.stubGlobal('fetch', fetch);
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    const people = w.findAll('article.op')[2];
    await people.find('form').trigger('submit');
    await flushPromises();
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(people.find('[data-field="path:team"] .field-error').text()).toContain('team is required');
  });

  it('sends N requests with a progress bar', async () => {
    let posts = 0;
    vi.stubGlobal('fetch', async (url) => {
      if (url.endsWith('openapi.json')) return jsonResponse(200, doc);
      posts++;
      return jsonResponse(202, { id: 'x' + posts });
    });
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    const msg = w.findAll('article.op')[0];
    await msg.find('input[type="number"]').setValue(30);
    await msg.findAll('button').find((b) => b.text().startsWith('Send 30')).trigger('click');
    await vi.waitFor(async () => {
      await flushPromises();
      expect(posts).toBe(30);
    }, { timeout: 10000 });
    const bar = msg.find('progress');
    expect(bar.attributes('value')).toBe('30');
    expect(bar.attributes('max')).toBe('30');
    expect(msg.text()).toContain('30 ok');
  });

  it('shows an error state when the document cannot be loaded', async () => {
    vi.stubGlobal('fetch', async () => new Response('no', { status: 502 }));
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    expect(w.find('[role="alert"]').text()).toContain('502');
  });
});

describe('Saved.vue', () => {
  it('pages older and newer with the cursors the server gives', async () => {
    const urls = [];
    const pages = {
      '': { messages: [{ id: 'c', received_at: '2024-01-01T00:00:03Z', data: { n: 3 } }, { id: 'b', received_at: '2024-01-01T00:00:02Z', data: { n: 2 } }], next: 'b' },
      b: { messages: [{ id: 'a', received_at: '2024-01-01T00:00:01Z', data: { n: 1 } }], next: null },
    };
    vi.stubGlobal('fetch', async (url) => {
      urls.push(url);
      const before = new URL(url, 'http://x').searchParams.get('before') || '';
      return jsonResponse(200, pages[before]);
    });
    const w = mount(Saved, { props: { route: { name: 'saved', query: { size: '10' } } } });
    await flushPromises();
    expect(urls[0]).toBe('/api/v1/messages/?limit=10');
    expect(w.findAll('li.item').map((li) => li.attributes('data-id'))).toEqual(['c', 'b']);
    const button = (label) => w.findAll('button').find((b) => b.text().includes(label));
    expect(button('Newer').attributes('disabled')).toBeDefined();
    await button('Older').trigger('click');
    await flushPromises();
    expect(urls[1]).toBe('/api/v1/messages/?limit=10&before=b');
    expect(w.findAll('li.item').map((li) => li.attributes('data-id'))).toEqual(['a']);
    expect(button('Older').attributes('disabled')).toBeDefined();
    await button('Newer').trigger('click');
    await flushPromises();
    expect(urls[2]).toBe('/api/v1/messages/?limit=10');
    await w.find('select#page-size').setValue('50');
    await flushPromises();
    expect(urls[3]).toBe('/api/v1/messages/?limit=50');
  });

  it('has an empty state and an error state', async () => {
    vi.stubGlobal('fetch', async () => jsonResponse(200, { messages: [], next: null }));
    let w = mount(Saved, { props: { route: { name: 'saved', query: {} } } });
    await flushPromises();
    expect(w.find('.empty').text()).toContain('No stored messages');
    vi.stubGlobal('fetch', async () => jsonResponse(504, { error: { code: 504, description: 'no answer in time' } }));
    w = mount(Saved, { props: { route: { name: 'saved', query: {} } } });
    await flushPromises();
    expect(w.find('[role="alert"]').text()).toContain('504 no answer in time');
  });
});

describe('Index.vue', () => {
  it('shows frames newest first, keeps at most 200, and the connection state', async () => {
    const sockets = [];
    class FakeWS {
      constructor(url) {
        this.url = url;
        sockets.push(this);
      }
      close() {}
    }
    vi.stubGlobal('WebSocket', FakeWS);
    const raf = [];
    vi.stubGlobal('requestAnimationFrame', (fn) => raf.push(fn));
    const w = mount(Index);
    expect(sockets[0].url).toBe(`ws://${window.location.host}/ws/v1/messages/`);
    sockets[0].onopen({});
    await flushPromises();
    expect(w.find('[role="status"]').text()).toBe('connected');
    for (let i = 0; i < 250; i++) {
      sockets[0].onmessage({ data: JSON.stringify({ id: 'id' + String(i).padStart(3, '0'), channel: '/messages/:POST', received_at: '2024-01-01T00:00:00Z', data: { i } }) });
    }
    raf.splice(0).forEach((f) => f());
    await flushPromises();
    const items = w.findAll('li.item');
    expect(items.length).toBe(200);
    expect(items[0].attributes('data-id')).toBe('id249');
    expect(items[0].find('pre').text()).toBe('{\n  "i": 249\n}');
    expect(w.find('[data-testid="total"]').text()).toBe('250');
    sockets[0].onclose({ code: 1012, reason: 'restart' });
    await flushPromises();
    expect(w.find('[role="status"]').text()).toBe('reconnecting');
    w.unmount();
  });

  it('shows a gap marker on an unknown position and carries on live', async () => {
    const sockets = [];
    class FakeWS {
      constructor(url) {
        this.url = url;
        sockets.push(this);
      }
      close() {}
    }
    vi.stubGlobal('WebSocket', FakeWS);
    const raf = [];
    vi.stubGlobal('requestAnimationFrame', (fn) => raf.push(fn));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const w = mount(Index);
      sockets[0].onopen({});
      sockets[0].onmessage({ data: JSON.stringify({ id: 'before', received_at: '2024-01-01T00:00:00Z', data: {} }) });
      sockets[0].onclose({ code: 4404, reason: 'unknown position; reconnect without since' });
      vi.runOnlyPendingTimers();
      expect(sockets.length).toBe(2);
      expect(sockets[1].url).toBe(`ws://${window.location.host}/ws/v1/messages/`);
      sockets[1].onopen({});
      sockets[1].onmessage({ data: JSON.stringify({ id: 'after', received_at: '2024-01-01T00:00:01Z', data: {} }) });
      raf.splice(0).forEach((f) => f());
      await flushPromises();
      const rows = w.findAll('ol.feed > li').map((li) => li.attributes('data-id'));
      expect(rows).toEqual(['after', 'gap-1', 'before']);
      expect(w.find('li.gap').text()).toContain('unknown position');
      expect(w.find('[data-testid="total"]').text()).toBe('2');
      w.unmount();
    } finally {
      vi.useRealTimers();
    }
  });
});
