// A real browser resumes the live feed after a drop, through nginx, with
// both transports: the live view over a WebSocket, the live view over
// EventSource (#/?transport=sse), and a bare EventSource that relies on the
// browser's own reconnection with Last-Event-ID. liveupdate is stopped,
// messages are accepted meanwhile, liveupdate comes back: every client shows
// every message exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, postMessage, stack, unique, waitUntil } from './lib.mjs';

test('WebSocket and EventSource clients resume exactly after liveupdate is away', { timeout: 180000 }, async (t) => {
  const browser = await launch();
  let restarted = true;
  t.after(async () => {
    await browser.close();
    if (!restarted) await stack('start', 'apps').catch(() => {});
  });

  const ws = await newPage(browser);
  await ws.goto(BASE + '/#/');
  const sse = await newPage(browser);
  await sse.goto(BASE + '/#/?transport=sse');
  for (const p of [ws, sse]) await p.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 15000 });
  assert.equal((await sse.locator('[data-testid="transport"]').textContent()).trim(), 'SSE');
  assert.equal((await ws.locator('[data-testid="transport"]').textContent()).trim(), 'WebSocket');

  // A bare EventSource: the browser alone does the resuming.
  const bare = await newPage(browser);
  bare.problems = []; // its own failed reconnects while liveupdate is away are expected
  await bare.goto(BASE + '/#/saved');
  await bare.evaluate(() => {
    window.__ids = [];
    window.__opens = 0;
    const es = new EventSource('/events/v1/messages/');
    es.onopen = () => window.__opens++;
    es.onmessage = (ev) => window.__ids.push(ev.lastEventId);
  });
  await waitUntil(() => bare.evaluate(() => window.__opens === 1), { what: 'the bare EventSource to open' });

  const before = await postMessage({ marker: unique('before-drop') });
  for (const p of [ws, sse]) await p.locator(`li.item[data-id="${before}"]`).waitFor({ timeout: 10000 });
  await waitUntil(() => bare.evaluate((id) => window.__ids.includes(id), before), { what: 'the bare EventSource to get the first message' });

  restarted = false;
  await stack('stop-one', 'liveupdate');
  for (const p of [ws, sse]) {
    await p.waitForFunction(() => document.querySelector('[role="status"]').dataset.status !== 'connected', null, { timeout: 15000 });
  }
  const during = [];
  for (let i = 0; i < 20; i++) during.push(await postMessage({ marker: unique('during-drop'), i }));
  await stack('start', 'apps');
  restarted = true;
  const after = await postMessage({ marker: unique('after-drop') });
  const all = [before, ...during, after];

  for (const p of [ws, sse]) {
    for (const id of [...during, after]) await p.locator(`li.item[data-id="${id}"]`).waitFor({ timeout: 30000 });
    for (const id of all) assert.equal(await p.locator(`li.item[data-id="${id}"]`).count(), 1, `message ${id} shown once`);
    assert.equal(await p.locator('li.gap').count(), 0, 'no gap: the position was known');
    assert.deepEqual(p.problems, []);
  }
  await waitUntil(() => bare.evaluate((ids) => ids.every((id) => window.__ids.includes(id)), all), {
    timeout: 30000,
    what: 'the bare EventSource to get every message',
  });
  const got = await bare.evaluate(() => window.__ids);
  for (const id of all) assert.equal(got.filter((x) => x === id).length, 1, `bare EventSource got ${id} once`);
  assert.ok((await bare.evaluate(() => window.__opens)) >= 2, 'the bare EventSource reconnected by itself');
});
