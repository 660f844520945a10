// Every view, in the light and the dark theme, passes axe-core's WCAG 2.1
// A/AA rules (contrast of text and controls included), once it has content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, DESKTOP, axeViolations, launch, postMessage, waitUntil } from './lib.mjs';

const VIEWS = [
  { name: 'live', hash: '#/', ready: '[role="status"][data-status="connected"]', title: 'Live · fpesa' },
  { name: 'saved', hash: '#/saved', ready: 'section[aria-labelledby="saved-title"] li.item', title: 'Saved · fpesa' },
  { name: 'upload', hash: '#/upload', ready: 'section[aria-labelledby="upload-title"] .empty, #upload-target', title: 'Upload · fpesa' },
  { name: 'dev', hash: '#/dev', ready: 'article.op[data-op="POST /messages/"]', title: 'Dev · fpesa' },
];

for (const scheme of ['light', 'dark']) {
  test(`axe-core finds no WCAG A/AA violation on any view in the ${scheme} theme`, { timeout: 120000 }, async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: scheme });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const id = await postMessage({ a11y: scheme, text: 'a message so that every view has content' });
    for (const v of VIEWS) {
      await page.goto(BASE + '/' + v.hash);
      await page.locator(v.ready).first().waitFor({ timeout: 15000 });
      if (v.name === 'live') {
        const again = await postMessage({ a11y: scheme, live: true });
        await page.locator(`li.item[data-id="${again}"]`).waitFor({ timeout: 10000 });
      }
      if (v.name === 'dev') {
        // An answer and a field error on screen too.
        const form = page.locator('article.op[data-op="POST /messages/"]');
        await form.getByRole('button', { name: 'Send', exact: true }).click();
        await form.locator('[data-testid="status"]').waitFor();
        const get = page.locator('article.op[data-op="GET /messages/"]');
        await get.getByLabel('limit').fill('abc');
        await get.getByRole('button', { name: 'Send', exact: true }).click();
        await get.locator('.field-error:not(:empty)').first().waitFor();
      }
      assert.equal(await page.title(), v.title);
      const bad = await axeViolations(page);
      assert.deepEqual(bad, [], `${v.name} (${scheme}): ${bad.join('\n')}`);
    }
    assert.ok(id);
    assert.deepEqual(errors, []);
    await waitUntil(async () => true);
  });
}
