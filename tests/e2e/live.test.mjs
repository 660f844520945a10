// A message sent from the Dev view appears in the live feed of another
// browser page within a second, and in the Saved view after navigating there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, waitUntil, unique } from './lib.mjs';

test('a message sent from Dev appears live at once and in Saved after navigation', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());

  const live = await newPage(browser);
  await live.goto(BASE + '/#/');
  await live.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 60000 });

  const dev = await newPage(browser);
  await dev.goto(BASE + '/#/dev');
  const form = dev.locator('article.op[data-op="POST /messages/"]');
  await form.waitFor({ timeout: 60000 });
  const marker = unique('from-dev');
  await form.getByLabel('JSON').fill(JSON.stringify({ marker, text: 'hello from the Dev view' }, null, 2));
  await form.getByRole('button', { name: 'Send', exact: true }).click();

  const status = form.locator('[data-testid="status"]');
  await status.waitFor();
  assert.match(await status.textContent(), /^202/);
  const answered = Date.now();
  const { id } = JSON.parse(await form.locator('[data-testid="response-body"]').textContent());
  assert.ok(id, 'the 202 answer carries the message id');

  // In the live feed soon after being accepted: the delay is printed (a
  // figure, not a pass/fail bound; the limit only stops a wait for nothing).
  const item = live.locator(`li.item[data-id="${id}"]`);
  await item.waitFor({ timeout: 10000 });
  console.log(`# live feed showed the message ${Date.now() - answered} ms after the 202 was on screen`);
  assert.match(await item.locator('pre').textContent(), new RegExp(marker));
  assert.equal(await live.locator(`li.item[data-id="${id}"]`).count(), 1);

  // Navigate to Saved in the same page: it lists the stored message (the
  // store writes in batches, so reload until it is there).
  await live.getByRole('link', { name: 'Saved' }).click();
  const saved = live.locator(`section[aria-labelledby="saved-title"] li.item[data-id="${id}"]`);
  await waitUntil(
    async () => {
      if (await saved.count()) return true;
      await live.getByRole('button', { name: 'Reload' }).click();
      await live.waitForTimeout(200);
      return (await saved.count()) > 0;
    },
    { timeout: 60000, what: 'the message in the Saved view' },
  );
  assert.match(await saved.locator('pre').textContent(), new RegExp(marker));

  // Back to the live view: the feed kept its connection and its list.
  await live.getByRole('link', { name: 'Live' }).click();
  await live.locator(`li.item[data-id="${id}"]`).waitFor();
  assert.equal(await live.locator('[role="status"]').getAttribute('data-status'), 'connected');
  assert.deepEqual([...live.problems, ...dev.problems], []);
});
