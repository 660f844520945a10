// The live page of other systems, through their own nginx: the ingestion
// example's form records arrive live on channel /dummy, and a system with two
// live channels lets the reader watch either or both (kept in the URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, VAR, launch, newPage, startSystem, waitUntil, unique } from './lib.mjs';

async function postForm(base, doc) {
  const res = await fetch(base + '/api/v1/dummy', { method: 'POST', body: new URLSearchParams({ data: JSON.stringify(doc) }) });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text).id;
}

async function postJson(base, p, doc) {
  const res = await fetch(base + '/api/v1' + p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(doc) });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text).id;
}

test('ingestion: every accepted form record appears on the live page at once', { timeout: 180000 }, async (t) => {
  const sys = await startSystem('ingestion', 'examples/ingestion/endpoints.yaml', 0);
  t.after(() => sys.stop());
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(sys.base + '/#/');
  // The only live channel of the system is picked without being asked.
  await page.locator('fieldset.channels label[data-channel="/dummy"] input:checked').waitFor({ timeout: 15000 });
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  assert.equal(await page.locator('fieldset.channels label').count(), 1);

  const marker = unique('form');
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await postForm(sys.base, { marker, i, sensor: 't-1' }));
  await waitUntil(async () => (await page.locator('ol.feed li.item').count()) >= 20, { timeout: 15000, what: '20 records on the live page' });
  for (const [i, id] of ids.entries()) {
    const item = page.locator(`ol.feed li.item[data-id="${id}"]`);
    assert.equal(await item.count(), 1, `record ${i} shown once`);
    // The frame carries the form as posted: its field "data" holds the JSON text.
    const form = JSON.parse(await item.locator('pre').textContent());
    assert.deepEqual(JSON.parse(form.data), { marker, i, sensor: 't-1' });
    assert.equal(await item.locator('.chan').textContent(), '/dummy');
  }
  assert.equal(await page.locator('[data-testid="total"]').textContent(), '20');
  assert.deepEqual(page.problems, []);
});

test('live page: several channels at once, picked by the reader and kept in the URL', { timeout: 180000 }, async (t) => {
  // The main system plus a second live endpoint.
  const dir = path.join(VAR, 'sys-multi');
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'endpoints.yaml');
  const extra = [
    '  - path: /alerts',
    '    method: POST',
    '    mode: publish',
    '    summary: An alert for whoever watches.',
    '    body: { type: object }',
    '    live: true',
    '',
  ].join('\n');
  const text = readFileSync(path.join(ROOT, 'endpoints.yaml'), 'utf8').replace(/^endpoints:\n/m, (m) => m + extra);
  assert.notEqual(text.indexOf('/alerts'), -1, 'the extra endpoint is in the file');
  writeFileSync(config, text);
  const sys = await startSystem('multi', config, 1);
  t.after(() => sys.stop());
  const browser = await launch();
  t.after(() => browser.close());
  const page = await newPage(browser);
  await page.goto(sys.base + '/#/');
  const box = (c) => page.locator(`fieldset.channels label[data-channel="${c}"] input`);
  await box('/alerts').waitFor({ timeout: 15000 });
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  assert.equal(await box('/messages/').isChecked(), true);
  assert.equal(await box('/alerts').isChecked(), true);

  const marker = unique('multi');
  const a1 = await postJson(sys.base, '/alerts', { marker, what: 'alert 1' });
  const m1 = await postJson(sys.base, '/messages/', { marker, what: 'message 1' });
  await page.locator(`li.item[data-id="${a1}"]`).waitFor({ timeout: 10000 });
  await page.locator(`li.item[data-id="${m1}"]`).waitFor({ timeout: 10000 });
  assert.equal(await page.locator(`li.item[data-id="${a1}"] .chan`).textContent(), '/alerts');
  assert.equal(await page.locator(`li.item[data-id="${m1}"] .chan`).textContent(), '/messages/');

  // Only /messages/ from now on; the choice is in the URL and survives a reload.
  await box('/alerts').uncheck();
  await waitUntil(async () => new URL(page.url()).hash === '#/?channels=%2Fmessages%2F', { what: 'the channel in the URL' });
  await page.reload();
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  assert.equal(await box('/alerts').isChecked(), false);
  assert.equal(await box('/messages/').isChecked(), true);
  const a2 = await postJson(sys.base, '/alerts', { marker, what: 'alert 2' });
  const m2 = await postJson(sys.base, '/messages/', { marker, what: 'message 2' });
  await page.locator(`li.item[data-id="${m2}"]`).waitFor({ timeout: 10000 });
  // The alert was published before the message, so had it been delivered
  // it would be on screen by now.
  assert.equal(await page.locator(`li.item[data-id="${a2}"]`).count(), 0);

  // Both again, then /alerts alone.
  await box('/alerts').check();
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  await box('/messages/').uncheck();
  await waitUntil(async () => new URL(page.url()).hash === '#/?channels=%2Falerts', { what: '/alerts alone in the URL' });
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  const a3 = await postJson(sys.base, '/alerts', { marker, what: 'alert 3' });
  await page.locator(`li.item[data-id="${a3}"]`).waitFor({ timeout: 10000 });
  assert.deepEqual(page.problems, []);
});
