import { describe, it, expect, vi, afterEach } from 'vitest';
import { mount, flushPromises } from '@vue/test-utils';
import Dev from './Dev.vue';
import Saved from './Saved.vue';
import Index from './Index.vue';
import { parseHash } from '../lib/router.js';
import Message from './Message.vue';

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
    await people.find('textarea').setValue('{"name": "Bob"}');
    await people.find('form').trigger('submit');
    await flushPromises();
    const [url, init] = calls[1];
    expect(url).toBe('http://other:9/people/blue');
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"name": "Bob"}');
    expect(people.find('[data-testid="url-sent"]').text()).toBe('POST http://other:9/people/blue');
    const field = people.find('[data-field="body:name"]');
    expect(field.find('.field-error').text()).toBe('/name: type: expected string');
    expect(field.find('input').attributes('aria-invalid')).toBe('true');
    expect(people.find('[data-testid="status"]').text()).toContain('400');
    expect(people.find('[data-field="body"] .field-error').text()).toBe('');
  });

  it('checks the body against its schema before sending, and clears the last answer', async () => {
    const calls = [];
    vi.stubGlobal('fetch', async (url, init = {}) => {
      calls.push([url, init]);
      if (url.endsWith('openapi.json')) return jsonResponse(200, doc);
      return jsonResponse(202, { id: 'x1' });
    });
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    const people = w.findAll('article.op')[2];
    await people.find('input[name="team"]').setValue('blue');
    await people.find('form').trigger('submit');
    await flushPromises();
    expect(calls.length).toBe(2);
    expect(people.find('[data-testid="status"]').text()).toContain('202');
    await people.find('textarea').setValue('{"name": 5, "age": "old"}');
    await people.find('form').trigger('submit');
    await flushPromises();
    expect(calls.length).toBe(2);
    expect(people.find('[data-field="body:name"] .field-error').text()).toBe('/name: type: must be string');
    expect(people.find('[data-field="body:age"] .field-error').text()).toBe('/age: type: must be integer');
    expect(people.find('[data-testid="status"]').exists()).toBe(false);
    await people.find('textarea').setValue('{"age": 3}');
    await people.find('form').trigger('submit');
    await flushPromises();
    expect(people.find('[data-field="body:name"] .field-error').text()).toBe('/name: required: must have required property \'name\'');
    expect(calls.length).toBe(2);
  });

  it('shows the URL it will send to and copies the request as curl', async () => {
    vi.stubGlobal('fetch', async (url) => (url.endsWith('openapi.json') ? jsonResponse(200, doc) : jsonResponse(202, { id: 'x1' })));
    const copied = [];
    vi.stubGlobal('navigator', { clipboard: { writeText: async (t) => copied.push(t) } });
    const w = mount(Dev, { props: { route: { name: 'dev', query: {} } } });
    await flushPromises();
    const people = w.findAll('article.op')[2];
    expect(people.find('[data-testid="url-now"]').text()).toBe('POST http://localhost:3000/api/v1/people/{team}');
    await people.find('input[name="team"]').setValue("o'neil");
    expect(people.find('[data-testid="url-now"]').text()).toBe("POST http://localhost:3000/api/v1/people/o'neil");
    await people.find('form').trigger('submit');
    await flushPromises();
    await people.findAll('button').find((b) => b.text() === 'Copy as curl').trigger('click');
    await flushPromises();
    expect(copied[0]).toBe(
      `curl -X POST 'http://localhost:3000/api/v1/people/o'\\''neil' -H 'Content-Type: application/json' --data-raw '{\n  "name": "Ada",\n  "age": 0\n}'`,
    );
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
  it('keeps its page in the URL and pages with the cursors the server gives', async () => {
    const urls = [];
    const pages = {
      '': { messages: [{ id: 'c', received_at: '2024-01-01T00:00:03Z', data: { n: 3 } }, { id: 'b', received_at: '2024-01-01T00:00:02Z', data: { n: 2 } }], next: 'b' },
      b: { messages: [{ id: 'a', received_at: '2024-01-01T00:00:01Z', data: { n: 1 } }], next: null },
    };
    vi.stubGlobal('fetch', async (url) => {
      urls.push(url);
      const u = new URL(url, 'http://x');
      if (u.searchParams.has('offset')) return jsonResponse(200, { offset: 0, limit: 1, total: 3, messages: [] });
      return jsonResponse(200, pages[u.searchParams.get('before') || '']);
    });
    window.location.hash = '#/saved?size=10';
    const w = mount(Saved, { props: { route: parseHash(window.location.hash) } });
    // Whatever the view does to the URL reaches it as the router would.
    const follow = async () => {
      await w.setProps({ route: parseHash(window.location.hash) });
      await flushPromises();
    };
    await flushPromises();
    const pageUrls = () => urls.filter((u) => !u.includes('offset'));
    expect(pageUrls()[0]).toBe('/api/v1/messages/?limit=10');
    expect(w.find('[data-testid="saved-total"]').text()).toBe('3 stored');
    expect(w.findAll('li.item').map((li) => li.attributes('data-id'))).toEqual(['c', 'b']);
    const button = (label) => w.findAll('button').find((b) => b.text().includes(label));
    expect(button('Newer').attributes('disabled')).toBeDefined();
    await button('Older').trigger('click');
    expect(window.location.hash).toBe('#/saved?size=10&before=b');
    await follow();
    expect(pageUrls()[1]).toBe('/api/v1/messages/?limit=10&before=b');
    expect(w.find('[data-testid="page"]').text()).toBe('page 2');
    expect(w.findAll('li.item').map((li) => li.attributes('data-id'))).toEqual(['a']);
    expect(button('Older').attributes('disabled')).toBeDefined();
    await button('Newer').trigger('click');
    expect(window.location.hash).toBe('#/saved?size=10');
    await follow();
    expect(pageUrls()[2]).toBe('/api/v1/messages/?limit=10');
    // A new page size starts from the newest page, in the same history entry.
    await w.find('select#page-size').setValue('50');
    expect(window.location.hash).toBe('#/saved?size=50');
    await follow();
    expect(pageUrls()[3]).toBe('/api/v1/messages/?limit=50');
    w.unmount();
  });

  it('folds a long message and bounds its panel', async () => {
    const big = Object.fromEntries(Array.from({ length: 100 }, (_, i) => ['k' + i, i]));
    vi.stubGlobal('fetch', async () => jsonResponse(200, { messages: [{ id: 'x', received_at: '2024-01-01T00:00:00Z', data: big }], next: null }));
    const w = mount(Saved, { props: { route: { name: 'saved', query: {} } } });
    await flushPromises();
    const pre = w.find('li.item pre');
    expect(pre.classes()).toContain('bounded');
    expect(pre.text().split('\n').length).toBe(24);
    const fold = w.find('li.item button.fold');
    expect(fold.text()).toBe('Show all 102 lines');
    await fold.trigger('click');
    expect(w.find('li.item pre').text().split('\n').length).toBe(102);
    expect(fold.attributes('aria-expanded')).toBe('true');
  });

  it('has an empty state and an error state', async () => {
    vi.stubGlobal('fetch', async () => jsonResponse(200, { messages: [], next: null }));
    let w = mount(Saved, { props: { route: { name: 'saved', query: {} } } });
    await flushPromises();
    expect(w.find('.empty').text()).toContain('No stored messages');
    vi.stubGlobal('fetch', async () => jsonResponse(504, { error: { code: 504, description: 'no answer in time' } }));
    w = mount(Saved, { props: { route: { name: 'saved', query: {} } } });
    await flushPromises();
    expect(w.find('.error-box[role="alert"]').text()).toContain('504 no answer in time');
  });
});

describe('Index.vue', () => {
  const liveDoc = {
    openapi: '3.1.0',
    info: { title: 't', version: '1' },
    paths: {
      '/messages/': { post: { 'x-fpesa-mode': 'publish', 'x-fpesa-live': true }, get: { 'x-fpesa-mode': 'rpc' } },
      '/alerts': { post: { 'x-fpesa-mode': 'publish', 'x-fpesa-live': true } },
      '/quiet': { post: { 'x-fpesa-mode': 'publish' } },
    },
  };
  function setup() {
    const sockets = [];
    class FakeWS {
      constructor(url) {
        this.url = url;
        sockets.push(this);
      }
      close() {
        this.closed = true;
      }
    }
    vi.stubGlobal('WebSocket', FakeWS);
    const raf = [];
    vi.stubGlobal('requestAnimationFrame', (fn) => raf.push(fn));
    vi.stubGlobal('fetch', async () => jsonResponse(200, liveDoc));
    // The feed hands the view one batch per 100 ms: a clock the test moves.
    const clock = { t: 0 };
    vi.stubGlobal('performance', { now: () => clock.t });
    return { sockets, raf, clock };
  }
  const frame = (i, channel = '/messages/') =>
    JSON.stringify({ id: 'id' + String(i).padStart(3, '0'), channel, received_at: '2024-01-01T00:00:00Z', data: { i } });

  it('opens every live channel of the document, shows frames newest first, keeps at most 200', async () => {
    const { sockets, raf, clock } = setup();
    const w = mount(Index, { props: { route: { name: 'live', query: {} } }, attachTo: document.body });
    await flushPromises();
    expect(sockets.map((s) => s.url)).toEqual([
      `ws://${window.location.host}/ws/v1/messages/`,
      `ws://${window.location.host}/ws/v1/alerts`,
    ]);
    expect(w.findAll('fieldset.channels input:checked').length).toBe(2);
    sockets[0].onopen({});
    await flushPromises();
    expect(w.find('[role="status"]').attributes('data-status')).not.toBe('connected');
    sockets[1].onopen({});
    await flushPromises();
    expect(w.find('[role="status"]').text()).toBe('connected');
    // Arriving a few at a time, every frame is drawn; the list keeps 200.
    for (let i = 0; i < 250; i++) {
      sockets[i % 2].onmessage({ data: frame(i, i % 2 ? '/alerts' : '/messages/') });
      if (i % 10 === 9) {
        raf.splice(0).forEach((f) => f());
        clock.t += 100;
      }
    }
    raf.splice(0).forEach((f) => f());
    await flushPromises();
    // At the top, the newest 40 lines are in the document; the list holds 200.
    const items = w.findAll('li.item');
    expect(items.length).toBe(40);
    expect(w.find('.bar').text()).toContain('showing 200 of at most 200');
    expect(items[0].attributes('data-id')).toBe('id249');
    expect(items[0].find('.chan').text()).toBe('/alerts');
    expect(items[0].find('pre').text()).toBe('{\n  "i": 249\n}');
    expect(w.find('[data-testid="total"]').text()).toBe('250');
    expect(w.findAll('li.marker').length).toBe(0);
    // A burst in one batch draws its newest items as far as the drawing
    // budget goes (100 a second, up to 25 at once) and one line for the rest.
    clock.t += 100;
    for (let i = 250; i < 350; i++) sockets[0].onmessage({ data: frame(i) });
    raf.splice(0).forEach((f) => f());
    await flushPromises();
    const top = w.findAll('ol.feed > li');
    expect(top[0].attributes('data-id')).toBe('id349');
    expect(top[24].attributes('data-id')).toBe('id325');
    expect(top[25].classes()).toContain('burst');
    expect(top[25].text()).toContain('75 earlier messages of this burst not drawn');
    expect(w.find('[data-testid="total"]').text()).toBe('350');
    // Scrolled down, the reader gets the whole list below, a step per frame.
    window.scrollY = 500;
    window.dispatchEvent(new Event('scroll'));
    for (let n = 0; n < 20 && raf.length; n++) raf.splice(0).forEach((f) => f());
    await flushPromises();
    const all = w.findAll('ol.feed > li');
    expect(all.length).toBe(200);
    expect(all[26].attributes('data-id')).toBe('id249');
    window.scrollY = 0;
    window.dispatchEvent(new Event('scroll'));
    await flushPromises();
    expect(w.findAll('ol.feed > li').length).toBe(40);
    sockets[0].onclose({ code: 1012, reason: 'restart' });
    await flushPromises();
    expect(w.find('[role="status"]').text()).toBe('reconnecting');
    w.unmount();
  });

  it('follows the channels of the URL', async () => {
    const { sockets } = setup();
    const w = mount(Index, { props: { route: { name: 'live', query: { channels: '/alerts' } } } });
    await flushPromises();
    expect(sockets.map((s) => s.url)).toEqual([`ws://${window.location.host}/ws/v1/alerts`]);
    await w.setProps({ route: { name: 'live', query: { channels: '/messages/' } } });
    await flushPromises();
    expect(sockets[0].closed).toBe(true);
    expect(sockets[1].url).toBe(`ws://${window.location.host}/ws/v1/messages/`);
    // Another view's route leaves the feeds as they are.
    await w.setProps({ route: { name: 'saved', query: {} } });
    await flushPromises();
    expect(sockets.length).toBe(2);
    w.unmount();
  });

  it('holds the list while the reader is scrolled down and offers "N new"', async () => {
    const { sockets, raf, clock } = setup();
    const w = mount(Index, { props: { route: { name: 'live', query: { channels: '/messages/' } } } });
    await flushPromises();
    sockets[0].onopen({});
    sockets[0].onmessage({ data: frame(1) });
    raf.splice(0).forEach((f) => f());
    await flushPromises();
    expect(w.findAll('li.item').length).toBe(1);
    window.scrollY = 500;
    window.dispatchEvent(new Event('scroll'));
    clock.t += 100;
    for (let i = 2; i < 400; i++) sockets[0].onmessage({ data: frame(i) });
    raf.splice(0).forEach((f) => f());
    await flushPromises();
    // What the reader looks at stays; the newcomers are counted.
    expect(w.findAll('li.item').map((li) => li.attributes('data-id'))).toEqual(['id001']);
    expect(w.find('[data-testid="new-notice"]').text()).toContain('398 new');
    window.scrollTo = () => {
      window.scrollY = 0;
    };
    await w.find('[data-testid="new-notice"]').trigger('click');
    await flushPromises();
    const ids = w.findAll('li.item').map((li) => li.attributes('data-id'));
    expect(ids.length).toBe(40);
    expect(ids[0]).toBe('id399');
    expect(w.find('.bar').text()).toContain('showing 200 of at most 200');
    expect(w.find('[data-testid="new-notice"]').exists()).toBe(false);
    w.unmount();
  });
});

describe('Saved.vue filter', () => {
  it('sends ?contains= with the page, checks the JSON first, keeps it in the URL', async () => {
    const urls = [];
    vi.stubGlobal('fetch', async (url) => {
      urls.push(url);
      return jsonResponse(200, { messages: [{ id: 'm1', received_at: '2024-01-01T00:00:00Z', data: { sensor: 't-1' } }], next: null, offset: 0, total: 9 });
    });
    window.location.hash = '#/saved';
    const w = mount(Saved, { props: { route: parseHash(window.location.hash) } });
    await flushPromises();
    await w.find('input#filter-contains').setValue('{not json');
    await w.find('form.filter').trigger('submit');
    expect(w.find('#filter-contains-err').text()).toContain('not JSON');
    expect(window.location.hash).toBe('#/saved');
    await w.find('input#filter-contains').setValue('{"sensor": "t-1"}');
    await w.find('form.filter').trigger('submit');
    expect(window.location.hash).toBe('#/saved?contains=%7B%22sensor%22%3A+%22t-1%22%7D');
    await w.setProps({ route: parseHash(window.location.hash) });
    await flushPromises();
    expect(urls[urls.length - 1]).toBe('/api/v1/messages/?limit=20&contains=%7B%22sensor%22%3A%20%22t-1%22%7D');
    expect(w.find('[data-testid="saved-total"]').exists()).toBe(false);
    expect(w.find('li.item a.id').attributes('href')).toBe('#/messages/m1');
    w.unmount();
  });
});

describe('Message.vue', () => {
  it('shows one message from GET /messages/{id}, and 404 plainly', async () => {
    const urls = [];
    vi.stubGlobal('fetch', async (url) => {
      urls.push(url);
      if (url.endsWith('/nope')) return jsonResponse(404, { error: { code: 404, description: 'no stored message has this id' } });
      return jsonResponse(200, { id: 'a b', received_at: '2024-01-01T00:00:00Z', data: { k: [1, 2] } });
    });
    const w = mount(Message, { props: { route: parseHash('#/messages/a%20b') } });
    await flushPromises();
    expect(urls[0]).toBe('/api/v1/messages/a%20b');
    expect(w.find('[data-testid="message-data"]').text()).toBe(JSON.stringify({ k: [1, 2] }, null, 2));
    expect(w.find('[data-testid="permalink"]').text()).toMatch(/#\/messages\/a%20b$/);
    await w.setProps({ route: parseHash('#/messages/nope') });
    await flushPromises();
    expect(w.find('[role="alert"]').text()).toContain('No stored message has this id.');
  });
});

describe('Index.vue gap', () => {
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
    vi.stubGlobal('fetch', async () => jsonResponse(200, { openapi: '3.1.0', paths: { '/messages/': { post: { 'x-fpesa-live': true } } } }));
    const w = mount(Index, { props: { route: { name: 'live', query: {} } } });
    await flushPromises();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
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
      const rows = w.findAll('ol.feed > li').map((li) => li.attributes('data-id') || li.classes().join(' '));
      expect(rows).toEqual(['after', 'marker gap', 'before']);
      expect(w.find('li.gap').text()).toContain('unknown position');
      expect(w.find('[data-testid="total"]').text()).toBe('2');
      w.unmount();
    } finally {
      vi.useRealTimers();
    }
  });
});
