// The Dev forms send an API key or a bearer token: a mapper on an aux port
// runs examples/secure (every route needs credentials), the Dev view is
// pointed at it, and a POST is refused 401 until the key is given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { AUX_PORT, BASE, BUILD, ROOT, VAR, launch, newPage, startProgram, waitUntil } from './lib.mjs';

const WRITER_KEY = 'demo-writer-2f9c41d7e0b84a1c';

test('a Dev form sends the API key it is given, and only then is accepted', async (t) => {
  const src = path.join(ROOT, 'examples', 'secure');
  const dir = path.join(VAR, 'e2e-secure');
  mkdirSync(dir, { recursive: true });
  for (const f of ['demo-hs256.secret', 'demo-jwks.json']) copyFileSync(path.join(src, f), path.join(dir, f));
  const origin = new URL(BASE).origin;
  const text = readFileSync(path.join(src, 'endpoints.yaml'), 'utf8')
    // The page reads the document and sends from BASE's origin, to a mapper
    // reached directly (no /api/v1 in front of it).
    .replace(/^(\s*origins:\s*)\[.*\]\s*$/gm, (m, key) => `${key}["${origin}"]`)
    .replace(/^http:\s*$/m, (m) => m + '\n  public_prefix: /');
  assert.match(text, new RegExp(origin.replace(/[.:/]/g, '\\$&')));
  const file = path.join(dir, 'endpoints.yaml');
  writeFileSync(file, text);

  const port = AUX_PORT + 1;
  const aux = `http://127.0.0.1:${port}`;
  const mapper = startProgram('e2e-secure-restmapper', [path.join(BUILD, 'bin', 'restmapper'), '--config', file], {
    FPESA_HTTP_LISTEN: `127.0.0.1:${port}`,
  });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await mapper.stop();
  });
  await waitUntil(async () => (await fetch(aux + '/health').catch(() => ({ ok: false }))).ok, {
    timeout: 60000,
    what: 'the secure mapper on ' + aux,
  });

  const page = await newPage(browser);
  const sent = [];
  page.on('request', (r) => {
    if (r.url().startsWith(aux + '/messages/') && r.method() === 'POST') sent.push(r.headers());
  });
  await page.goto(BASE + '/#/dev?openapi=' + encodeURIComponent(aux + '/openapi.json'));
  const form = page.locator('article.op[data-op="POST /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('JSON').fill('{"e2e": "credentials"}');

  // Without credentials: the mapper's 401, shown as the answer.
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  await form.locator('[data-testid="status"]', { hasText: '401' }).waitFor({ timeout: 30000 });
  assert.equal(sent.length, 1);
  assert.equal(sent[0]['x-api-key'], undefined);

  // With the writer's key: sent as X-API-Key, accepted.
  await page.getByLabel('Send', { exact: true }).selectOption('key');
  await page.locator('#cred-value').fill(WRITER_KEY);
  await form.getByRole('button', { name: 'Send', exact: true }).click();
  await form.locator('[data-testid="status"]', { hasText: '202' }).waitFor({ timeout: 30000 });
  assert.equal(sent.length, 2);
  assert.equal(sent[1]['x-api-key'], WRITER_KEY);
  // The key is kept for the tab (a reload keeps it), not put in the URL.
  assert.ok(!page.url().includes(WRITER_KEY));
  await page.reload();
  await page.locator('#cred-value').waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#cred-value').inputValue(), WRITER_KEY);
  assert.deepEqual(page.problems.filter((p) => !/401/.test(p)), []);
});
