// The images system's upload page through its own nginx: a 2 MB photo,
// chosen in the page, goes up with a progress bar and its thumbnail is shown
// once made; a file over the route's limit gets nginx's JSON 413 on screen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, noisePng, startSystem } from './lib.mjs';

test('images: a 2 MB photo uploaded from the page through nginx comes back as a thumbnail', { timeout: 180000 }, async (t) => {
  const sys = await startSystem('images', 'examples/images/endpoints.yaml', 2);
  t.after(() => sys.stop());
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(sys.base + '/#/upload');
  assert.equal(await page.title(), 'Upload · fpesa');
  await page.locator('#upload-target').waitFor({ timeout: 15000 });
  assert.equal(await page.locator('#upload-target option').first().textContent(), 'POST /image');

  const png = noisePng(2 * 1024 * 1024);
  assert.ok(png.length >= 2 * 1024 * 1024 && png.length < 4 * 1024 * 1024, `photo of ${png.length} bytes`);
  await page.locator('[data-testid="file"]').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: png });
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.locator('progress[aria-label="Upload progress"]').waitFor();
  const img = page.locator('[data-testid="result-image"]');
  await img.waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid="upload-status"]').textContent(), '202');
  const size = await img.evaluate((el) => (el.complete ? [el.naturalWidth, el.naturalHeight] : null));
  assert.deepEqual(size, [128, 128], 'the thumbnail, 128 px on its longer side');
  assert.equal(await page.locator('progress[aria-label="Upload progress"]').getAttribute('value'), String(png.length));

  // Over the route's 4 MiB: refused by nginx, the reason on screen, nothing stale.
  const big = Buffer.concat([png, png]);
  await page.locator('[data-testid="file"]').setInputFiles({ name: 'big.png', mimeType: 'image/png', buffer: big });
  assert.equal(await img.count(), 0, 'the last result is gone once another file is picked');
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const alert = page.locator('section[aria-label="Result"] [role="alert"]');
  await alert.waitFor({ timeout: 30000 });
  assert.match(await alert.textContent(), /^413 request body larger than 4194304 bytes/);
  assert.deepEqual(page.problems.filter((p) => !/413/.test(p)), []);
});
