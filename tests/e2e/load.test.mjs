// A burst from the Dev view's "send N" button while the live feed watches:
// every message is counted, the list stays bounded, and the page keeps
// painting. The frame rate and long tasks are printed, not asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, launch, newPage, postMessage } from './lib.mjs';

const N = 300;

test('the live feed keeps up with a burst sent from the Dev view', async (t) => {
  const browser = await launch();
  t.after(() => browser.close());

  const live = await newPage(browser);
  await live.goto(BASE + '/#/');
  await live.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 60000 });
  const total = live.locator('[data-testid="total"]');
  const start = Number(await total.textContent());
  // Count painted frames and long main-thread tasks on the live page.
  await live.evaluate(() => {
    window.__frames = 0;
    window.__long = [];
    const tick = () => {
      window.__frames++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__long.push(e.duration))).observe({ type: 'longtask', buffered: false });
  });

  const dev = await newPage(browser);
  await dev.goto(BASE + '/#/dev');
  const form = dev.locator('article.op[data-op="POST /messages/"]');
  await form.waitFor({ timeout: 60000 });
  await form.getByLabel('JSON').fill(JSON.stringify({ load: true, text: 'burst' }));
  await form.getByRole('spinbutton', { name: 'Number of requests to send' }).fill(String(N));
  await form.getByRole('spinbutton', { name: 'Requests in flight at a time' }).fill('6');
  const t0 = Date.now();
  await form.getByRole('button', { name: `Send ${N}` }).click();
  await form.locator('progress').waitFor();
  await form.getByText(`${N}/${N} · ${N} ok · 0 failed`).waitFor({ timeout: 120000 });
  const sentMs = Date.now() - t0;
  assert.equal(await form.locator('progress').getAttribute('value'), String(N));

  await live.waitForFunction((want) => Number(document.querySelector('[data-testid="total"]').textContent) >= want, start + N, { timeout: 90000 });
  const seenMs = Date.now() - t0;
  assert.equal(Number(await total.textContent()), start + N);
  // Bounded: the list keeps 200 lines, messages and the lines that stand
  // for the older messages of a burst (a batch draws its newest 10); at the
  // top, the newest 40 of them are in the document.
  await live.getByText('showing 200 of at most 200').waitFor({ timeout: 10000 });
  assert.equal(await live.locator('ol.feed > li').count(), 40, 'the live list in the document stays short');
  assert.ok((await live.locator('ol.feed > li.item').count()) >= 20, 'most lines are messages');
  const { frames, long } = await live.evaluate(() => ({ frames: window.__frames, long: window.__long }));
  console.log(
    `# ${N} messages sent in ${sentMs} ms (${Math.round((N * 1000) / sentMs)}/s); all shown after ${seenMs} ms; ` +
      `live page painted ${Math.round((frames * 1000) / seenMs)} frames/s, ${long.length} long tasks (max ${Math.round(Math.max(0, ...long))} ms)`,
  );

  // The browser sends at most 6 requests at a time to one origin, so a
  // faster stream comes from here: 500 a second, paced, for 3 seconds.
  const before = Number(await total.textContent());
  const frames0 = await live.evaluate(() => ((window.__long = []), window.__frames));
  const RATE = 500;
  const SECONDS = 3;
  const t1 = Date.now();
  const inflight = new Set();
  let sent = 0;
  let failed = 0;
  while (sent < RATE * SECONDS) {
    const due = Math.floor(((Date.now() - t1) * RATE) / 1000);
    while (sent < Math.min(due, RATE * SECONDS) && inflight.size < 64) {
      const p = postMessage({ load: 'paced', n: sent }).catch(() => failed++);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      sent++;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  const postMs = Date.now() - t1;
  assert.equal(failed, 0);
  await live.waitForFunction((want) => Number(document.querySelector('[data-testid="total"]').textContent) >= want, before + sent, { timeout: 90000 });
  const shownMs = Date.now() - t1;
  assert.equal(Number(await total.textContent()), before + sent);
  assert.equal(await live.locator('ol.feed > li').count(), 40);
  // Scrolled down, the reader has all 200 lines below, and the list holds
  // still while new messages are counted.
  await live.mouse.wheel(0, 600);
  await live.waitForFunction(() => document.querySelectorAll('ol.feed > li').length === 200, null, { timeout: 20000 });
  const after = await live.evaluate(() => ({ frames: window.__frames, long: window.__long }));
  console.log(
    `# ${sent} messages posted in ${postMs} ms (${Math.round((sent * 1000) / postMs)}/s); all shown after ${shownMs} ms; ` +
      `live page painted ${Math.round(((after.frames - frames0) * 1000) / shownMs)} frames/s, ${after.long.length} long tasks (max ${Math.round(Math.max(0, ...after.long))} ms)`,
  );
  assert.deepEqual([...live.problems, ...dev.problems], []);
});
