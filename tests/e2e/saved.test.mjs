// The Saved view pages through the real store: older pages hold older
// messages, none repeated, and "newer" brings back the page before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, newPage, postMessage, waitUntil } from './lib.mjs';

const idsOf = (page) => page.locator('section[aria-labelledby="saved-title"] li.item').evaluateAll((els) => els.map((e) => e.dataset.id));

test('Saved pages older and newer through the store with keyset cursors', async (t) => {
  for (let i = 0; i < 25; i++) await postMessage({ saved: i });
  await waitUntil(async () => {
    const r = await api('GET', '/messages/?limit=30');
    return r.status === 200 && r.json.messages.length >= 25;
  }, { what: '25 stored messages' });

  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(BASE + '/#/saved');
  await page.getByLabel('Page size').selectOption('10');
  await page.getByText('page 1').waitFor();
  await waitUntil(async () => (await idsOf(page)).length === 10, { what: 'a page of 10' });
  const first = await idsOf(page);

  await page.getByRole('button', { name: 'Older →' }).click();
  await page.getByText('page 2').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] !== first[0], { what: 'the older page' });
  const second = await idsOf(page);
  assert.equal(second.length, 10);
  assert.equal(second.filter((id) => first.includes(id)).length, 0, 'no message on two pages');
  // Newest first within a page and across pages (UUIDv7 ids sort by time).
  const all = [...first, ...second];
  assert.deepEqual(all, [...all].sort().reverse());

  await page.getByRole('button', { name: '← Newer' }).click();
  await page.getByText('page 1').waitFor();
  await waitUntil(async () => (await idsOf(page))[0] === first[0], { what: 'the first page again' });
  assert.deepEqual(await idsOf(page), first);
  assert.ok(await page.getByRole('button', { name: '← Newer' }).isDisabled());
  assert.deepEqual(page.problems, []);
});
