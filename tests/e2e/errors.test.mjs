// A schema violation is shown next to the field it names before anything is
// sent (the operation's JSON Schema, checked in the browser): a query
// parameter, and the body as a whole. The server, which checks the same
// schema, would refuse it too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, api, launch, newPage, waitUntil } from './lib.mjs';

function countRequests(page, part) {
  const seen = { n: 0 };
  page.on('request', (r) => {
    if (r.url().includes(part) && r.method() !== 'OPTIONS' && !r.url().includes('openapi.json')) seen.n++;
  });
  return seen;
}

test('a query parameter that breaks the schema is refused beside it before sending', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const server = await api('GET', '/messages/?limit=abc');
  assert.equal(server.status, 400, 'the server refuses it as well');

  const page = await newPage(browser);
  const sent = countRequests(page, '/api/v1/messages/');
  await page.goto(BASE + '/#/dev');
  const form = page.locator('article.op[data-op="GET /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('limit', { exact: true }).fill('abc');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  const field = form.locator('[data-field="query:limit"]');
  await field.locator('.field-error:not(:empty)').waitFor();
  assert.match(await field.locator('.field-error').textContent(), /^limit: pattern: must match pattern "\^\[0-9\]\+\$"/);
  assert.equal(await field.locator('input').getAttribute('aria-invalid'), 'true');
  assert.equal(await form.locator('[data-testid="status"]').count(), 0);
  assert.equal(sent.n, 0, 'nothing was sent');
  // No other field claims it.
  assert.equal(await form.locator('[data-field="query:before"] .field-error').textContent(), '');

  // Fixed, it goes through and the error goes away.
  await form.getByLabel('limit', { exact: true }).fill('3');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  await form.locator('[data-testid="status"]', { hasText: '200' }).waitFor();
  assert.equal(await field.locator('.field-error').textContent(), '');
  assert.equal(sent.n, 1);
  assert.deepEqual(page.problems, []);
});

test('a body that is not an object is refused beside the editor before sending', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());
  const server = await api('POST', '/messages/', [1, 2, 3]);
  assert.equal(server.status, 400, 'the server refuses it as well');
  const page = await newPage(browser);
  const sent = countRequests(page, '/api/v1/messages/');
  await page.goto(BASE + '/#/dev');
  const form = page.locator('article.op[data-op="POST /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('JSON').fill('[1, 2, 3]');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  const err = form.locator('[data-field="body"] .field-error');
  await waitUntil(async () => (await err.textContent()) !== '', { what: 'the error beside the editor' });
  assert.equal(await err.textContent(), '(root): type: must be object');
  assert.equal(await form.locator('[data-testid="status"]').count(), 0);
  assert.equal(sent.n, 0, 'nothing was sent');
  assert.deepEqual(page.problems, []);
});
