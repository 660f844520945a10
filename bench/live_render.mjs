// The live page under a burst: how long the browser's main thread is blocked
// while the page renders 1,000 messages a second, measured with Chromium's
// performance timeline (PerformanceObserver "longtask") in Debian's chromium
// driven by playwright-core, against the running stack through nginx.
//
// Three runs in one invocation: the page idle (the reference), then the page
// receiving RATE msg/s for SECONDS twice: with everything at the same
// priority, where on a 2-core box the broker, database and load generator
// preempt the page's main thread and the timeline counts the scheduler as
// much as the page; and with the browser favoured, as if it had a machine of
// its own (the headline figure): the server side (the stack's processes and
// this load generator) at nice 10 and the browser's scheduling group at
// BROWSER_NICE (-10 unless set). Where the kernel groups processes by session
// (autogroups), as it does here, a nice value only weighs inside a session
// and each session gets an equal share; the browser runs in a session of its
// own, so the sessions' groups are reniced too (scripts/renice-stack.sh).
//
// Printed for each: long tasks over 50 ms (count, longest, share of the
// time), the messages the page counted, the input delay of clicks on the
// page (median, p95), loaded against idle; where long frames' time went
// (scripts by entry point, the rendering after them); and the browser's CPU
// time by thread (ms a second: the page's main thread, its feeds' worker,
// compositing, the network and GPU processes) beside how busy the machine
// was. A main thread that works 10 ms a frame and shows an 80 ms long task
// waited for a core. BENCH_TRACE=1 also records a Chromium trace of the
// loaded phases and prints, of the long tasks, how much the main thread spent
// on a core and on what (a traced run costs the browser more: its figures
// are not the headline ones).
//
//   FPESA_NGINX_PORT=... node bench/live_render.mjs   (RATE, SECONDS, BROWSER_NICE, BENCH_TRACE from the environment)
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
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
const BROWSER_NICE = Number(process.env.BROWSER_NICE ?? -10);

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

// CPU time, from /proc, of every thread of the browser (its processes by
// kind: browser, renderer, gpu-process, network...; the renderer's main
// thread as "main"), in clock ticks, and of the whole machine: how much of a
// phase the page's main thread worked, and what else ran beside it.
const TICK_MS = 1000 / (Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100);
function cpuTimes(root) {
  const threads = new Map();
  const stat = (file) => {
    const s = fs.readFileSync(file, 'utf8');
    return { name: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), f: s.slice(s.lastIndexOf(')') + 2).split(' ') };
  };
  const parent = new Map();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      parent.set(p, stat(`/proc/${p}/stat`).f[1]);
    } catch {
      /* gone meanwhile */
    }
  }
  const mine = new Set(root ? [String(root)] : []);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp] of parent) {
      if (!mine.has(p) && mine.has(pp)) {
        mine.add(p);
        grew = true;
      }
    }
  }
  for (const p of mine) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const type = (/--type=([\w-]+)/.exec(cmd) || [])[1] || 'browser';
      const sub = (/--utility-sub-type=(\w+)/.exec(cmd) || [])[1];
      const kind = type === 'utility' && sub ? sub : type;
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const { name, f } = stat(`/proc/${p}/task/${t}/stat`);
        const key = `${kind} ${t === p ? 'main' : name}`;
        threads.set(key, (threads.get(key) || 0) + Number(f[11]) + Number(f[12]));
      }
    } catch {
      /* gone meanwhile */
    }
  }
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return { threads, busy: cpu.reduce((a, b) => a + b, 0) - cpu[3] - (cpu[4] || 0), all: cpu.reduce((a, b) => a + b, 0) };
}

// With BENCH_TRACE=1 the loaded phases also run under a Chromium trace (the
// scheduler's top-level tasks with their thread time, and the timeline's
// events inside them), which tells of each long task of the page's main
// thread how much of it the thread spent on a core and on what; a trace
// costs the browser time of its own, so the figures of a traced run are not
// the headline ones.
const TRACE = process.env.BENCH_TRACE === '1';
const TRACE_CATEGORIES = ['toplevel', 'devtools.timeline', 'v8.gc'];

// The long tasks (over 50 ms) of the busiest renderer main thread of a
// trace: [{ wall, cpu, inside: Map(event name -> ms of thread time) }].
function tracedLongTasks(json) {
  const events = (JSON.parse(json).traceEvents || []).filter((e) => e.ph === 'X' || (e.ph === 'M' && e.name === 'thread_name'));
  const mains = new Set(events.filter((e) => e.ph === 'M' && e.args.name === 'CrRendererMain').map((e) => `${e.pid}/${e.tid}`));
  const per = new Map();
  for (const e of events) {
    const k = `${e.pid}/${e.tid}`;
    if (e.ph === 'X' && mains.has(k)) (per.get(k) || per.set(k, []).get(k)).push(e);
  }
  const main = [...per.values()].sort((a, b) => b.length - a.length)[0] || [];
  main.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const out = [];
  let task = null;
  let stack = [];
  for (const e of main) {
    if (task && e.ts >= task.end) task = null;
    if (!task) {
      if (!/(^|,)toplevel(,|$)/.test(e.cat)) continue;
      if (e.dur <= 50000) {
        task = { end: e.ts + e.dur, skip: true };
        continue;
      }
      task = { end: e.ts + e.dur, wall: e.dur / 1000, cpu: (e.tdur || 0) / 1000, inside: new Map() };
      out.push(task);
      stack = [];
      continue;
    }
    if (task.skip || e.tdur === undefined) continue;
    // Thread time of each event less that of the events inside it.
    while (stack.length && stack[stack.length - 1].end <= e.ts) stack.pop();
    const own = e.tdur / 1000;
    // The scheduler's own wrappers inside a task: the time no finer event
    // of the timeline accounts for.
    const name = /(^|,)toplevel(,|$)/.test(e.cat) ? '(other)' : e.name;
    task.inside.set(name, (task.inside.get(name) || 0) + own);
    if (stack.length) {
      const up = stack[stack.length - 1].name;
      task.inside.set(up, task.inside.get(up) - own);
    }
    stack.push({ end: e.ts + e.dur, name });
  }
  return out;
}

// Observes long tasks and measures the input delay of clicks for the phase.
async function phase(page, run, { traced = false } = {}) {
  const cpu0 = cpuTimes(browserPid);
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
  if (traced) await browser.startTracing(page, { categories: TRACE_CATEGORIES });
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
  const cpu1 = cpuTimes(browserPid);
  // After the phase's figures: stopping a trace takes the browser a while.
  const trace = traced ? tracedLongTasks((await browser.stopTracing()).toString()) : null;
  const threads = [...cpu1.threads].map(([k, t]) => [k, (t - (cpu0.threads.get(k) || 0)) * TICK_MS]).filter(([, ms]) => ms > 0);
  const cores = (cpu1.all - cpu0.all) / ((m.wall / 1000) * (1000 / TICK_MS));
  return { ...m, ...out, trace, threads, cores, machine: cores > 0 ? (cpu1.busy - cpu0.busy) / (cpu1.all - cpu0.all) : 0 };
}

const pct = (xs, p) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// Whether the kernel schedules by session (autogroups): then a nice value
// weighs only inside its session, and a session's share is set in
// /proc/PID/autogroup.
function autogroups() {
  try {
    return fs.readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

// The pid of this process's child whose name matches re (the browser), or ''.
function childPid(re) {
  try {
    const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)]).toString();
    const line = out.split('\n').find((l) => re.test(l));
    return line ? line.trim().split(/\s+/)[0] : '';
  } catch {
    return '';
  }
}

const browser = await chromium.launch({
  executablePath: process.env.FPESA_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
// The browser's own process, the root of the processes whose CPU time is
// counted and whose scheduling group keeps its priority.
const browserPid = childPid(/chrom/i);
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
  // The server side at nice 10 (scripts/renice-stack.sh: its threads, and
  // the scheduling groups of its sessions but the browser's and this
  // process's, where other processes would go down with it), this process's
  // thread too (it generates the load), and, where the kernel groups by
  // session, the browser's group at BROWSER_NICE (-10 unless set; 0 leaves
  // it): work of other sessions on a shared machine then does not preempt
  // the page either, and the load generator, whose group keeps its share,
  // still sends RATE a second.
  const favour = (on) => {
    try {
      execFileSync(path.join(ROOT, 'scripts', 'renice-stack.sh'), [on ? '10' : '0', browserPid, String(process.pid)], { stdio: 'inherit' });
      os.setPriority(on ? 10 : 0);
    } catch (e) {
      console.log(`(could not change priorities: ${e.message.split('\n')[0]})`);
    }
    if (!BROWSER_NICE || !browserPid || !autogroups()) return;
    const group = `/proc/${browserPid}/autogroup`;
    try {
      fs.writeFileSync(group, String(on ? BROWSER_NICE : 0));
      console.log(`fpesa: bench: the browser's scheduling group at nice ${on ? BROWSER_NICE : 0}`);
    } catch (e) {
      if (on) console.log(`(the browser's scheduling group keeps its priority: ${e.message.split('\n')[0]})`);
    }
  };
  const shared = await phase(page, () => load(RATE, SECONDS), { traced: TRACE });
  favour(true);
  let busy;
  try {
    busy = await phase(page, () => load(RATE, SECONDS), { traced: TRACE });
  } finally {
    favour(false);
  }

  const show = (name, r) => {
    const over = r.long.filter((d) => d > 50);
    const share = (100 * r.long.reduce((a, b) => a + b, 0)) / r.wall;
    console.log(
      `${name}: sent ${r.sent} (${Math.round(r.sent / r.seconds)}/s, ${r.ok} accepted), page counted ${r.received} (${Math.round(r.received / (r.wall / 1000))}/s); ` +
        `long tasks > 50 ms: ${over.length}, longest ${Math.round(Math.max(0, ...r.long))} ms, ${share.toFixed(1)}% of the time in long tasks; ` +
        `input delay median ${pct(r.delays, 50).toFixed(1)} ms, p95 ${pct(r.delays, 95).toFixed(1)} ms (${r.delays.length} clicks)`,
    );
    // Where the long frames' time went: script by entry point, and the
    // rendering after the scripts (style, layout, paint and any time the
    // thread waited for a core meanwhile).
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
        `  ${r.frames.length} frames over 50 ms, ${Math.round(total)} ms in all: rendering ${Math.round(layout)} ms; ` +
          top.map(([w, d]) => `${w}: ${Math.round(d)} ms`).join('; '),
      );
    }
    // The browser's CPU time by thread, in ms per second of the phase (the
    // page's main thread, its feeds' worker, compositing, raster, the GPU
    // and network processes), beside how busy the whole machine was: a long
    // task of 80 ms from a main thread that works 10 ms a frame is a main
    // thread waiting for a core.
    if (r.threads.length) {
      const secs = r.wall / 1000;
      const sorted = [...r.threads].sort((p, q) => q[1] - p[1]);
      const all = sorted.reduce((sum, [, ms]) => sum + ms, 0);
      console.log(
        `  browser CPU ${Math.round(all / secs)} ms/s: ` +
          sorted.slice(0, 6).map(([k, ms]) => `${k} ${Math.round(ms / secs)}`).join(', ') +
          `; machine ${Math.round(100 * r.machine)}% busy (${r.cores.toFixed(0)} cores)`,
      );
    }
    // Traced: of the long tasks' time, how much the main thread was on a
    // core (the page's work) and what it did there; the rest it waited.
    if (r.trace) {
      const wall = r.trace.reduce((sum, t) => sum + t.wall, 0);
      const cpu = r.trace.reduce((sum, t) => sum + t.cpu, 0);
      const inside = new Map();
      for (const t of r.trace) for (const [k, ms] of t.inside) inside.set(k, (inside.get(k) || 0) + ms);
      const top = [...inside].sort((p, q) => q[1] - p[1]).slice(0, 6);
      const worst = [...r.trace].sort((p, q) => q.wall - p.wall).slice(0, 5);
      console.log(
        `  traced: ${r.trace.length} long tasks, ${Math.round(wall)} ms, on a core ${Math.round(cpu)} ms` +
          (worst.length ? ` (longest: ${worst.map((t) => `${Math.round(t.wall)} ms on a core ${Math.round(t.cpu)}`).join(', ')})` : '') +
          (top.length ? `; on a core: ${top.map(([k, ms]) => `${k} ${Math.round(ms)} ms`).join(', ')}` : ''),
      );
    }
    return { over: over.length, longest: Math.max(0, ...r.long), median: pct(r.delays, 50) };
  };
  const a = show('idle (reference)', idle);
  const c = show(`${RATE} msg/s, all at one priority`, shared);
  const b = show(`${RATE} msg/s, browser favoured (server side at nice 10${BROWSER_NICE ? `, browser at ${BROWSER_NICE}` : ''})`, busy);
  const ratio = a.median > 0 ? b.median / a.median : 0;
  console.log(`live page at ${RATE} msg/s: ${b.over} long tasks over 50 ms (longest ${Math.round(b.longest)} ms); input delay ${ratio.toFixed(2)}x idle`);
  console.log(`RESULT\tlive page long tasks > 50 ms at ${RATE} msg/s\t${b.over} (longest ${Math.round(b.longest)} ms)\tidle page\t${a.over} (longest ${Math.round(a.longest)} ms)\t-`);
  console.log(`RESULT\tlive page median input delay at ${RATE} msg/s\t${b.median.toFixed(1)} ms\tidle page\t${a.median.toFixed(1)} ms\t${ratio.toFixed(2)}`);
  console.log(`RESULT\tlive page long tasks > 50 ms at ${RATE} msg/s, server side at the same priority\t${c.over} (longest ${Math.round(c.longest)} ms)\tidle page\t${a.over} (longest ${Math.round(a.longest)} ms)\t-`);
} finally {
  await browser.close();
  agent.destroy();
}
