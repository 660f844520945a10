// What a person keeping the frontend open all day relies on: the Saved
// page's position in the URL (reload, Back), the Dev forms checking a body
// against its schema before sending and copying a request as curl, bounded
// panels, and the live page holding still with "N new" while read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { BASE, api, launch, newPage, postMessage, waitUntil, unique } from './lib.mjs';

const idsOf = (page) => page.locator('section[aria-labelledby="saved-title"] li.item').evaluateAll((els) => els.map((e) => e.dataset.id));

test('Saved: the page shown is in the URL; reload stays on it, Back returns to the one before', { timeout: 120000 }, async (t) => {
  for (let i = 0; i < 25; i++) await postMessage({ url_state: i });
  await waitUntil(async () => {
    const r = await api('GET', '/messages/?limit=30');
    return r.status === 200 && r.json.messages.length >= 25;
  }, { what: '25 stored messages' });
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(BASE + '/#/dev');
  await page.getByRole('link', { name: 'Saved' }).click();
  await page.getByLabel('Page size').selectOption('10');
  await waitUntil(async () => new URL(page.url()).hash === '#/saved?size=10', { what: 'size in the URL' });
  await waitUntil(async () => (await idsOf(page)).length === 10, { what: 'a page of 10' });
  const first = await idsOf(page);
  assert.equal(await page.title(), 'Saved · fpesa');

  await page.getByRole('button', { name: 'Older →' }).click();
  await page.getByText('page 2').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] !== first[0], { what: 'page 2' });
  const second = await idsOf(page);
  await page.getByRole('button', { name: 'Older →' }).click();
  await page.getByText('page 3').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] !== second[0], { what: 'page 3' });
  const third = await idsOf(page);
  assert.match(new URL(page.url()).hash, /^#\/saved\?size=10&before=[^&]+&trail=[^&]+$/);

  await page.reload();
  await page.getByText('page 3').waitFor();
  await waitUntil(async () => (await idsOf(page)).length > 0, { what: 'page 3 after reload' });
  assert.deepEqual(await idsOf(page), third, 'reload shows the same page');
  // Newer works from a reloaded deep page too.
  await page.getByRole('button', { name: '← Newer' }).click();
  await page.getByText('page 2').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] === second[0], { what: 'page 2 by Newer' });

  await page.goBack();
  await page.getByText('page 3').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] === third[0], { what: 'page 3 by Back' });
  await page.goBack();
  await page.getByText('page 2').waitFor();
  await page.goBack();
  await page.getByText('page 1').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] === first[0], { what: 'page 1 by Back' });

  // A new page size starts again at page 1 and leaves no stale cursor.
  await page.goForward();
  await page.getByText('page 2').waitFor();
  await page.getByLabel('Page size').selectOption('50');
  await waitUntil(async () => new URL(page.url()).hash === '#/saved?size=50', { what: 'only size=50 in the URL' });
  await page.getByText('page 1').waitFor();
  assert.deepEqual(page.problems, []);
});

test('Dev: schema errors are shown before sending, the URL sent is shown, curl copies a working command', { timeout: 120000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const sent = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/messages/')) sent.push(r.method() + ' ' + r.url());
  });
  await page.goto(BASE + '/#/dev');
  assert.equal(await page.title(), 'Dev · fpesa');
  const post = page.locator('article.op[data-op="POST /messages/"]');
  await post.waitFor({ timeout: 15000 });
  const marker = unique('curl');
  await post.getByLabel('JSON').fill(JSON.stringify({ marker }));
  await post.getByRole('button', { name: 'Send', exact: true }).click();
  await post.locator('[data-testid="status"]').waitFor();
  assert.match(await post.locator('[data-testid="status"]').textContent(), /^202/);
  assert.equal(await post.locator('[data-testid="url-sent"]').textContent(), `POST ${BASE}/api/v1/messages/`);

  // An array is not the object the schema asks for: refused here, with the
  // reason, and the earlier 202 is gone from the screen.
  const before = sent.length;
  await post.getByLabel('JSON').fill('[1, 2]');
  await post.getByRole('button', { name: 'Send', exact: true }).click();
  await post.locator('[data-field="body"] .field-error').getByText('(root): type: must be object').waitFor();
  assert.equal(await post.locator('[data-testid="status"]').count(), 0, 'no stale answer');
  assert.equal(sent.length, before, 'nothing was sent');

  const get = page.locator('article.op[data-op="GET /messages/"]');
  await get.getByLabel('limit').fill('ten');
  await get.getByRole('button', { name: 'Send', exact: true }).click();
  await get.locator('[data-field="query:limit"] .field-error').getByText(/limit: pattern/).waitFor();
  assert.equal(sent.length, before, 'nothing was sent');
  await get.getByLabel('limit').fill('100');
  assert.equal(await get.locator('[data-testid="url-now"]').textContent(), `GET ${BASE}/api/v1/messages/?limit=100`);
  await get.getByRole('button', { name: 'Send', exact: true }).click();
  await get.locator('[data-testid="status"]').waitFor();
  assert.equal(await get.locator('[data-testid="url-sent"]').textContent(), `GET ${BASE}/api/v1/messages/?limit=100`);
  // A long answer stays a panel that scrolls.
  const box = await get.locator('[data-testid="response-body"]').evaluate((el) => [el.clientHeight, el.scrollHeight]);
  assert.ok(box[0] <= 480 && box[1] > box[0], `the answer panel is bounded (${box})`);

  // Copy as curl, then run what was copied: it posts the same message.
  await post.getByLabel('JSON').fill(JSON.stringify({ marker, via: "it's curl" }));
  await post.getByRole('button', { name: 'Send', exact: true }).click();
  await post.locator('[data-testid="status"]').waitFor();
  await post.getByRole('button', { name: 'Copy as curl' }).click();
  await post.getByText('curl command copied').waitFor();
  const cmd = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(cmd, /^curl -X POST 'http:\/\/127\.0\.0\.1:\d+\/api\/v1\/messages\/' -H 'Content-Type: application\/json' --data-raw /);
  const out = await new Promise((resolve, reject) =>
    execFile('sh', ['-c', cmd + ' -sS'], { timeout: 20000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
  );
  const { id } = JSON.parse(out);
  await waitUntil(async () => {
    const r = await api('GET', '/messages/?limit=50');
    const m = r.json && r.json.messages.find((x) => x.id === id);
    return m && m.data.via === "it's curl" && m.data.marker === marker;
  }, { what: 'the message curl posted, stored as sent' });
  assert.deepEqual(page.problems, []);
});

test('Live: while the reader is scrolled down nothing moves; "N new" brings the newcomers', { timeout: 120000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser, { width: 900, height: 600 });
  await page.goto(BASE + '/#/');
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  const tag = unique('hold');
  let last;
  for (let i = 0; i < 30; i++) last = await postMessage({ tag, i, text: 'line\n'.repeat(3) });
  await page.locator(`li.item[data-id="${last}"]`).waitFor({ timeout: 10000 });
  await page.mouse.wheel(0, 1500);
  await waitUntil(async () => (await page.evaluate(() => window.scrollY)) > 100, { what: 'scrolled down' });
  const watched = await page.evaluate(() => {
    const li = [...document.querySelectorAll('ol.feed li.item')].find((el) => el.getBoundingClientRect().top > 80);
    return { id: li.dataset.id, top: li.getBoundingClientRect().top };
  });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await postMessage({ tag, late: i }));
  await page.locator('[data-testid="new-notice"]').getByText('5 new messages').waitFor({ timeout: 10000 });
  const now = await page.evaluate((id) => document.querySelector(`li.item[data-id="${id}"]`).getBoundingClientRect().top, watched.id);
  assert.equal(now, watched.top, 'the message being read did not move');
  assert.equal(await page.locator(`li.item[data-id="${ids[4]}"]`).count(), 0, 'held back while reading');
  await page.locator('[data-testid="new-notice"]').click();
  await page.locator(`li.item[data-id="${ids[4]}"]`).waitFor();
  assert.equal(await page.evaluate(() => window.scrollY), 0);
  const top = await page.locator('ol.feed li.item').first().getAttribute('data-id');
  assert.equal(top, ids[4]);
  assert.equal(await page.locator('[data-testid="new-notice"]').count(), 0);
  assert.deepEqual(page.problems, []);
});
