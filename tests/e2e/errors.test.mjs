// A schema violation shows the server's own error next to the field it
// names: a query parameter, and the body as a whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, newPage, waitUntil } from './lib.mjs';

test('a query parameter that breaks the schema gets the server error beside it', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const expected = await api('GET', '/messages/?limit=abc');
  assert.equal(expected.status, 400);
  const description = expected.json.error.description;

  const page = await newPage(browser);
  await page.goto(BASE + '/#/dev');
  const form = page.locator('article.op[data-op="GET /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('limit', { exact: true }).fill('abc');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  const field = form.locator('[data-field="query:limit"]');
  await field.locator('.field-error:not(:empty)').waitFor();
  assert.equal(await field.locator('.field-error').textContent(), description);
  assert.equal(await field.locator('input').getAttribute('aria-invalid'), 'true');
  assert.match(await form.locator('[data-testid="status"]').textContent(), /^400/);
  // No other field claims it.
  assert.equal(await form.locator('[data-field="query:before"] .field-error').textContent(), '');

  // Fixed, it goes through and the error goes away.
  await form.getByLabel('limit', { exact: true }).fill('3');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  await form.locator('[data-testid="status"]', { hasText: '200' }).waitFor();
  assert.equal(await field.locator('.field-error').textContent(), '');
  assert.deepEqual(page.problems, []);
});

test('a body that is not an object gets the server error beside the editor', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(BASE + '/#/dev');
  const form = page.locator('article.op[data-op="POST /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('JSON').fill('[1, 2, 3]');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  const err = form.locator('[data-field="body"] .field-error');
  await waitUntil(async () => (await err.textContent()) !== '', { what: 'the error beside the editor' });
  const shown = JSON.parse(await form.locator('[data-testid="response-body"]').textContent());
  assert.equal(shown.error.code, 400);
  assert.equal(await err.textContent(), shown.error.description);
  assert.match(await form.locator('[data-testid="status"]').textContent(), /^400/);
});
