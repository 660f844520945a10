// An endpoint added to a copy of endpoints.yaml appears in the Dev view as a
// form, with no change to the frontend: a mapper started on that copy (on an
// aux port) serves its OpenAPI document, and the Dev view is pointed at it
// with ?openapi=<url>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { AUX_PORT, BASE, BUILD, ROOT, VAR, launch, newPage, startProgram, waitUntil } from './lib.mjs';

const EXTRA = `
  - path: /e2e/widgets/{color}
    method: POST
    mode: publish
    summary: Widgets, an endpoint only this test's copy of the configuration has.
    body:
      type: object
      required: [name]
      properties:
        name: { type: string, examples: ["sprocket"] }
        size: { type: integer, minimum: 1 }
`;

test('an endpoint added to the YAML appears as a form', async (t) => {
  const original = readFileSync(process.env.FPESA_CONFIG || path.join(ROOT, 'endpoints.yaml'), 'utf8');
  assert.match(original, /^endpoints:\s*$/m);
  // The page (on BASE) reads the aux mapper's document and sends to it
  // across origins: the copy lets that origin in (CORS is only for the
  // configured origins).
  const copy = original
    .replace(/^endpoints:\s*$/m, (m) => m + EXTRA.replace(/\n$/, ''))
    .replace(/^(\s*origins:\s*)\[.*\]\s*$/m, (m, key) => `${key}["${new URL(BASE).origin}"]`)
    // Reached directly, not under nginx's /api/v1: its document says so.
    .replace(/^http:\s*$/m, (m) => m + '\n  public_prefix: /');
  assert.notEqual(copy, original);
  mkdirSync(VAR, { recursive: true });
  const file = path.join(VAR, 'e2e-endpoints.yaml');
  writeFileSync(file, copy);

  const aux = `http://127.0.0.1:${AUX_PORT}`;
  const mapper = startProgram('e2e-restmapper', [path.join(BUILD, 'bin', 'restmapper'), '--config', file], {
    FPESA_HTTP_LISTEN: `127.0.0.1:${AUX_PORT}`,
  });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await mapper.stop();
  });
  await waitUntil(async () => (await fetch(aux + '/health')).ok, { timeout: 60000, what: 'the test mapper on ' + aux });

  // The stack's own document does not have it: the form comes from the copy.
  const page = await newPage(browser);
  await page.goto(BASE + '/#/dev');
  await page.locator('article.op[data-op="POST /messages/"]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('article.op[data-op="POST /e2e/widgets/{color}"]').count(), 0);

  await page.goto(BASE + '/#/dev?openapi=' + encodeURIComponent(aux + '/openapi.json'));
  const form = page.locator('article.op[data-op="POST /e2e/widgets/{color}"]');
  await form.waitFor({ timeout: 60000 });
  assert.match(await form.locator('summary').first().textContent(), /only this test's copy/);
  // Path parameter, a field per body property, the editor pre-filled from the schema.
  await form.getByRole('textbox', { name: 'color', exact: true }).fill('blue');
  assert.deepEqual(JSON.parse(await form.getByLabel('JSON').inputValue()), { name: 'sprocket', size: 1 });
  assert.equal(await form.locator('[data-field="body:name"] input').inputValue(), 'sprocket');

  // A violation of the new schema is found before sending (the document's
  // schema, checked in the browser) and lands next to the field it names.
  let posted = 0;
  page.on('request', (r) => {
    if (r.url().includes('/e2e/widgets/')) posted++;
  });
  await form.locator('[data-field="body:size"] input').fill('0');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  const sizeError = form.locator('[data-field="body:size"] .field-error');
  await waitUntil(async () => (await sizeError.textContent()) !== '', { what: 'the error beside size' });
  assert.equal(await sizeError.textContent(), '/size: minimum: must be >= 1');
  assert.equal(posted, 0, 'nothing was sent');
  assert.equal(await form.locator('[data-testid="response-body"]').count(), 0);
  assert.equal(await form.locator('[data-field="body:name"] .field-error').textContent(), '');

  await form.locator('[data-field="body:size"] input').fill('3');
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  await form.locator('[data-testid="status"]', { hasText: '202' }).waitFor({ timeout: 30000 });
  assert.equal(await sizeError.textContent(), '');
  assert.deepEqual(page.problems, []);
});
