// Screenshots of the three views at desktop and phone widths, saved under
// $FPESA_VAR/screenshots/ for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { BASE, DESKTOP, PHONE, launch, newPage, postMessage, screenshot } from './lib.mjs';

const samples = [
  { text: 'Hello from the screenshot run', user: { name: 'Ada', id: 1 } },
  { event: 'order.created', order: { id: 4711, items: [{ sku: 'A-1', qty: 2 }], total: 19.9 } },
  { sensor: 'greenhouse-3', temperature: 21.5, humidity: 0.61 },
];

for (const [tag, viewport] of [
  ['desktop', DESKTOP],
  ['phone', PHONE],
]) {
  test(`screenshots of the three views (${tag})`, async (t) => {
    const browser = await launch();
    t.after(() => browser.close());
    const page = await newPage(browser, viewport);
    await page.goto(BASE + '/#/');
    await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 60000 });
    const ids = [];
    for (const s of samples) ids.push(await postMessage(s));
    await page.locator(`li.item[data-id="${ids[ids.length - 1]}"]`).waitFor({ timeout: 30000 });
    const files = [await screenshot(page, `live-${tag}`)];

    await page.getByRole('link', { name: 'Saved' }).click();
    await page.locator('section[aria-labelledby="saved-title"] li.item').first().waitFor({ timeout: 30000 });
    files.push(await screenshot(page, `saved-${tag}`));

    await page.getByRole('link', { name: 'Dev' }).click();
    await page.locator('article.op').first().waitFor({ timeout: 30000 });
    files.push(await screenshot(page, `dev-${tag}`));

    // Nothing is wider than the screen (no sideways scrolling on a phone).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the ${tag} screen`);
    for (const f of files) assert.ok(statSync(f).size > 1000, f);
    console.log('# screenshots: ' + files.join(' '));
    assert.deepEqual(page.problems, []);
  });
}
