// The live feed survives a liveupdate restart: it reconnects with
// ?since=<last id> and shows every message accepted while it was away,
// each exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, postMessage, stack, unique } from './lib.mjs';

test('the live feed loses nothing across a liveupdate restart', async (t) => {
  const browser = await launch();
  let restarted = false;
  t.after(async () => {
    await browser.close();
    if (!restarted) await stack('start', 'apps').catch(() => {});
  });

  const page = await newPage(browser);
  await page.goto(BASE + '/#/');
  const status = page.locator('[role="status"]');
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 60000 });

  const before = await postMessage({ marker: unique('before-restart') });
  await page.locator(`li.item[data-id="${before}"]`).waitFor({ timeout: 30000 });

  await stack('stop-one', 'liveupdate');
  await page.waitForFunction(() => document.querySelector('[role="status"]').dataset.status !== 'connected', null, { timeout: 30000 });
  assert.match(await status.textContent(), /reconnecting|offline/);

  // Accepted while no liveupdate runs: the mappers and the store carry on.
  const during = [];
  for (let i = 0; i < 5; i++) during.push(await postMessage({ marker: unique('during-restart'), i }));

  await stack('start', 'apps');
  restarted = true;
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 90000 });
  const after = await postMessage({ marker: unique('after-restart') });

  for (const id of [...during, after]) await page.locator(`li.item[data-id="${id}"]`).waitFor({ timeout: 60000 });
  for (const id of [before, ...during, after]) {
    assert.equal(await page.locator(`li.item[data-id="${id}"]`).count(), 1, `message ${id} shown once`);
  }
  // Newest first: the list order follows arrival, the resumed ones before the live one.
  const ids = await page.locator('li.item').evaluateAll((els) => els.map((e) => e.dataset.id));
  const pos = (id) => ids.indexOf(id);
  assert.ok(pos(after) < pos(during[4]) && pos(during[0]) < pos(before), `order: ${ids.slice(0, 8).join(' ')}`);
  assert.deepEqual(page.problems, []);
});
