// The live page under a burst: how long the browser's main thread is blocked
// while the page renders 1,000 messages a second, measured with Chromium's
// performance timeline (PerformanceObserver "longtask") in Debian's chromium
// driven by playwright-core, against the running stack through nginx.
//
// Three runs in one invocation: the page idle (the reference), then the page
// receiving RATE msg/s for SECONDS twice: with the server side (the stack's
// processes and this load generator) at nice 10, as if the browser had a
// machine of its own (the headline figure), and with everything at the same
// priority, where on a 2-core box the broker, database and load generator
// preempt the page's main thread and the timeline counts the scheduler as
// much as the page. Printed: long tasks over 50 ms (count, longest, share of
// the time), the messages the page counted, the input delay of clicks on the
// page (median, p95), loaded against idle, and where long frames' time went.
//
//   FPESA_NGINX_PORT=... node bench/live_render.mjs   (RATE, SECONDS from the environment)
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'frontend', 'package.json'));
const { chromium } = require('playwright-core');

const PORT = Number(process.env.FPESA_NGINX_PORT || 0);
if (!PORT) throw new Error('FPESA_NGINX_PORT is not set');
const BASE = `http://127.0.0.1:${PORT}`;
const RATE = Number(process.env.RATE || 1000);
const SECONDS = Number(process.env.SECONDS || process.env.BENCH_SECONDS || 10);

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function post(body) {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: '127.0.0.1', port: PORT, path: '/api/v1/messages/', method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 202));
      },
    );
    req.on('error', () => resolve(false));
    req.end(data);
  });
}

// Sends RATE msg/s for SECONDS, paced every 10 ms; resolves with { sent, ok }.
async function load(rate, seconds) {
  const t0 = Date.now();
  let sent = 0;
  const pending = [];
  let ok = 0;
  while (Date.now() - t0 < seconds * 1000) {
    const due = Math.floor(((Date.now() - t0) / 1000) * rate);
    while (sent < due) {
      const n = sent++;
      pending.push(post({ bench: 'live_render', n, text: 'a message of a burst', values: [n, n * 2, n * 3] }).then((g) => ok += g ? 1 : 0));
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(pending);
  return { sent, ok, seconds: (Date.now() - t0) / 1000 };
}

// Observes long tasks and measures the input delay of clicks for the phase.
async function phase(page, run) {
  await page.evaluate(() => {
    window.__bench = { long: [], delays: [], t0: performance.now(), received: Number(document.querySelector('[data-testid="total"]').textContent) };
    window.__obs && window.__obs.disconnect();
    window.__obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__bench.long.push(e.duration);
    });
    window.__obs.observe({ type: 'longtask' });
    // Long animation frames: where a long frame's time went (script, style
    // and layout, the scripts by their entry point), for the breakdown.
    window.__bench.frames = [];
    window.__loaf && window.__loaf.disconnect();
    try {
      window.__loaf = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          if (e.duration <= 50) continue;
          const layout = e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0;
          const scripts = (e.scripts || []).map((x) => ({ d: x.duration, who: `${x.invokerType} ${x.invoker}`.slice(0, 80), forced: x.forcedStyleAndLayoutDuration }));
          window.__bench.frames.push({ d: e.duration, blocking: e.blockingDuration, layout, scripts });
        }
      });
      window.__loaf.observe({ type: 'long-animation-frame' });
    } catch {
      window.__loaf = null; /* an older browser: no breakdown */
    }
  });
  let clicking = true;
  const clicker = (async () => {
    while (clicking) {
      await page.mouse.click(5, 300);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const out = await run();
  clicking = false;
  await clicker;
  await page.waitForTimeout(300);
  const m = await page.evaluate(() => {
    const b = window.__bench;
    const wall = performance.now() - b.t0;
    return { long: b.long, delays: b.delays, frames: b.frames, wall, received: Number(document.querySelector('[data-testid="total"]').textContent) - b.received };
  });
  return { ...m, ...out };
}

const pct = (xs, p) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const browser = await chromium.launch({
  executablePath: process.env.FPESA_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(BASE + '/#/');
  await page.locator('[role="status"][data-status="connected"]').waitFor({ timeout: 20000 });
  // Input delay: from the moment the browser received the input to when the
  // page's handler runs (the main thread was busy in between).
  await page.evaluate(() => {
    document.addEventListener('pointerdown', (e) => window.__bench && window.__bench.delays.push(performance.now() - e.timeStamp), true);
  });
  // Warm up (code paths, connections) without measuring.
  await load(Math.min(RATE, 200), 1);
  await page.waitForTimeout(500);

  const idle = await phase(page, async () => {
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    return { sent: 0, ok: 0, seconds: SECONDS };
  });
  // The server side at nice 10 (scripts/renice-stack.sh), this process too
  // (it generates the load; the browser keeps the priority it started with).
  const favour = (on) => {
    try {
      execFileSync(path.join(ROOT, 'scripts', 'renice-stack.sh'), [on ? '10' : '0'], { stdio: 'inherit' });
      os.setPriority(on ? 10 : 0);
      return true;
    } catch (e) {
      console.log(`(could not change priorities: ${e.message.split('\n')[0]})`);
      return false;
    }
  };
  const shared = await phase(page, () => load(RATE, SECONDS));
  const favoured = favour(true);
  let busy;
  try {
    busy = await phase(page, () => load(RATE, SECONDS));
  } finally {
    if (favoured) favour(false);
  }

  const show = (name, r) => {
    const over = r.long.filter((d) => d > 50);
    const share = (100 * r.long.reduce((a, b) => a + b, 0)) / r.wall;
    console.log(
      `${name}: sent ${r.sent} (${Math.round(r.sent / r.seconds)}/s, ${r.ok} accepted), page counted ${r.received} (${Math.round(r.received / (r.wall / 1000))}/s); ` +
        `long tasks > 50 ms: ${over.length}, longest ${Math.round(Math.max(0, ...r.long))} ms, ${share.toFixed(1)}% of the time in long tasks; ` +
        `input delay median ${pct(r.delays, 50).toFixed(1)} ms, p95 ${pct(r.delays, 95).toFixed(1)} ms (${r.delays.length} clicks)`,
    );
    // Where the long frames' time went: script by entry point, and style
    // and layout after the scripts.
    if (r.frames && r.frames.length) {
      const by = new Map();
      let layout = 0;
      let total = 0;
      for (const f of r.frames) {
        total += f.d;
        layout += f.layout;
        for (const x of f.scripts) by.set(x.who, (by.get(x.who) || 0) + x.d);
      }
      const top = [...by.entries()].sort((p, q) => q[1] - p[1]).slice(0, 4);
      console.log(
        `  ${r.frames.length} frames over 50 ms, ${Math.round(total)} ms in all: style and layout ${Math.round(layout)} ms; ` +
          top.map(([w, d]) => `${w}: ${Math.round(d)} ms`).join('; '),
      );
    }
    return { over: over.length, longest: Math.max(0, ...r.long), median: pct(r.delays, 50) };
  };
  const a = show('idle (reference)', idle);
  const c = show(`${RATE} msg/s, all at one priority`, shared);
  const b = show(`${RATE} msg/s, server side at nice 10`, busy);
  const ratio = a.median > 0 ? b.median / a.median : 0;
  console.log(`live page at ${RATE} msg/s: ${b.over} long tasks over 50 ms (longest ${Math.round(b.longest)} ms); input delay ${ratio.toFixed(2)}x idle`);
  console.log(`RESULT\tlive page long tasks > 50 ms at ${RATE} msg/s\t${b.over} (longest ${Math.round(b.longest)} ms)\tidle page\t${a.over} (longest ${Math.round(a.longest)} ms)\t-`);
  console.log(`RESULT\tlive page median input delay at ${RATE} msg/s\t${b.median.toFixed(1)} ms\tidle page\t${a.median.toFixed(1)} ms\t${ratio.toFixed(2)}`);
  console.log(`RESULT\tlive page long tasks > 50 ms at ${RATE} msg/s, server side at the same priority\t${c.over} (longest ${Math.round(c.longest)} ms)\tidle page\t${a.over} (longest ${Math.round(a.longest)} ms)\t-`);
} finally {
  await browser.close();
  agent.destroy();
}
