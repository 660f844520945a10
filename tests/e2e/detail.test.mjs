// A stored message's permalink (#/messages/<id>) from the Saved view and the
// live feed, and the Saved view's server-side filter (?contains=), through
// nginx in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, newPage, postMessage, waitUntil, unique } from './lib.mjs';

test('permalink: a message opens at its own URL, from Saved and from the live feed', { timeout: 120000 }, async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(BASE + '/#/');
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  const marker = unique('detail');
  const id = await postMessage({ marker, text: 'open me' });
  await page.locator(`ol.feed li.item[data-id="${id}"] a.id`).click();
  await page.locator('[data-testid="message-data"]').waitFor({ timeout: 15000 });
  assert.equal(new URL(page.url()).hash, '#/messages/' + id);
  assert.equal(await page.title(), 'Message ' + id + ' · fpesa');
  assert.deepEqual(JSON.parse(await page.locator('[data-testid="message-data"]').textContent()), { marker, text: 'open me' });

  // The same URL in a new page (a shared link, a reload).
  const other = await newPage(browser);
  await other.goto(BASE + '/#/messages/' + id);
  await other.locator('[data-testid="message-data"]').waitFor({ timeout: 15000 });
  assert.equal(await other.locator('[data-testid="permalink"]').textContent(), BASE + '/#/messages/' + id);

  // From Saved, and Back returns to the page it was on.
  await other.goto(BASE + '/#/saved');
  const link = other.locator(`section[aria-labelledby="saved-title"] li.item[data-id="${id}"] a.id`);
  await waitUntil(async () => {
    if (await link.count()) return true;
    await other.getByRole('button', { name: 'Reload' }).click();
    return false;
  }, { timeout: 15000, what: 'the message on Saved' });
  await link.click();
  await other.locator('[data-testid="message-data"]').waitFor();
  await other.goBack();
  await other.locator('#saved-title').waitFor();
  // An unknown id says so.
  await other.goto(BASE + '/#/messages/01a00000-0000-7000-8000-000000000000');
  await other.locator('[role="alert"]').getByText('No stored message has this id.').waitFor({ timeout: 15000 });
  assert.deepEqual([...page.problems, ...other.problems.filter((p) => !/404/.test(p))], []);
});

test('Saved filter: only the messages whose data contains the JSON, paged, kept in the URL', { timeout: 120000 }, async (t) => {
  const marker = unique('filter');
  const reds = [];
  for (let i = 0; i < 7; i++) {
    const id = await postMessage({ marker, colour: i % 2 ? 'red' : 'blue', i });
    if (i % 2) reds.push(id);
  }
  const contains = JSON.stringify({ marker, colour: 'red' });
  await waitUntil(async () => {
    const r = await api('GET', '/messages/?limit=10&contains=' + encodeURIComponent(contains));
    return r.status === 200 && r.json.messages.length === reds.length;
  }, { what: 'the red ones stored' });
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(BASE + '/#/saved?size=10');
  await page.getByLabel('Data contains').fill('{"marker": ');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  await page.locator('#filter-contains-err').getByText(/not JSON/).waitFor();
  await page.getByLabel('Data contains').fill(contains);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const ids = () => page.locator('section[aria-labelledby="saved-title"] li.item').evaluateAll((els) => els.map((e) => e.dataset.id));
  await waitUntil(async () => JSON.stringify(await ids()) === JSON.stringify([...reds].reverse()), { what: 'only the red ones, newest first' });
  assert.equal(new URLSearchParams(new URL(page.url()).hash.split('?')[1]).get('contains'), contains);
  await page.reload();
  await waitUntil(async () => (await ids()).length === reds.length, { what: 'the filter after reload' });
  assert.equal(await page.getByLabel('Data contains').inputValue(), contains);
  await page.getByRole('button', { name: 'Clear filter' }).click();
  await waitUntil(async () => !new URL(page.url()).hash.includes('contains'), { what: 'the filter gone from the URL' });
  assert.deepEqual(page.problems, []);
});
