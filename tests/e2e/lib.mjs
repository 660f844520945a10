// Shared by the browser tests: Debian's Chromium driven by playwright-core
// against the running stack through nginx (FPESA_NGINX_PORT).
//
// playwright-core lives in frontend/node_modules. NODE_PATH does not apply to
// ES module imports, so it is loaded with a require() rooted at
// frontend/package.json, found from this file's own place in the repository.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(path.join(ROOT, 'frontend', 'package.json'));
const { chromium } = require('playwright-core');

const port = process.env.FPESA_NGINX_PORT;
if (!port) throw new Error('FPESA_NGINX_PORT is not set: run through scripts/test.sh, or export the stack environment (scripts/env.sh)');
export const BASE = `http://127.0.0.1:${port}`;
export const VAR = process.env.FPESA_VAR || path.join(ROOT, 'var', process.env.FPESA_STACK || 'test');
export const BUILD = process.env.BUILD || path.join(ROOT, 'build');
export const AUX_PORT = Number(process.env.FPESA_AUX_PORT || Number(port) + 2) + 5;

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

export async function launch() {
  return chromium.launch({
    executablePath: process.env.FPESA_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-quic',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// A page whose console errors and uncaught exceptions are collected, so a
// test can say the app ran clean.
export async function newPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, isMobile: viewport.width < 600, hasTouch: viewport.width < 600 });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push('exception: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) {
      page.problems.push('console: ' + m.text());
    }
  });
  return page;
}

export async function api(method, p, body) {
  const res = await fetch(BASE + '/api/v1' + p, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

export async function postMessage(data) {
  const r = await api('POST', '/messages/', data);
  if (r.status !== 202 || !r.json || !r.json.id) throw new Error(`POST /messages/ answered ${r.status}: ${r.text}`);
  return r.json.id;
}

export async function waitUntil(fn, { timeout = 30000, interval = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}` + (last instanceof Error ? ': ' + last.message : ''));
    await new Promise((r) => setTimeout(r, interval));
  }
}

// scripts/stack.sh with this stack's environment (FPESA_STACK, ports).
export function stack(...args) {
  return new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', 'stack.sh'), args, { env: process.env, timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`stack.sh ${args.join(' ')} failed: ${stderr || stdout || err.message}`));
      else resolve(stdout);
    });
  });
}

// Starts one of our programs in the background; returns { proc, stop() }.
export function startProgram(name, argv, env = {}) {
  const logDir = path.join(VAR, 'log');
  mkdirSync(logDir, { recursive: true });
  const fd = openSync(path.join(logDir, name + '.log'), 'a');
  const proc = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((r) => proc.once('exit', r));
  return {
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    },
  };
}

export async function screenshot(page, name) {
  const dir = path.join(VAR, 'screenshots');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name + '.png');
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

export function unique(tag) {
  return `${tag}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// Another system (an example's endpoints.yaml, or any file) served through an
// nginx of its own, beside the test stack and on its broker and database:
// scripts/stack.sh start apps with its own var/ folder and ports (one mapper,
// liveupdate when the file has a live endpoint). Returns { base, stop() }.
// slot picks the ports: AUX_PORT + 16 + 4 * slot and the three after it.
export async function startSystem(name, config, slot = 0) {
  const first = AUX_PORT + 16 + 4 * slot;
  const env = {
    ...process.env,
    FPESA_STACK: 'sys-' + name,
    FPESA_VAR: path.join(VAR, 'sys-' + name),
    FPESA_PG_DIR: path.join(VAR, 'sys-' + name, 'no-pg'),
    FPESA_CONFIG: path.isAbsolute(config) ? config : path.join(ROOT, config),
    FPESA_NGINX_PORT: String(first),
    FPESA_MAPPER_PORT: String(first + 1),
    FPESA_HTTP_LISTEN: '127.0.0.1:' + (first + 1),
    FPESA_MAPPERS: '1',
    FPESA_LIVE_PORT: String(first + 2),
    FPESA_LIVE_LISTEN: '127.0.0.1:' + (first + 2),
    FPESA_HANDLER_PORT: String(first + 3),
  };
  const run = (...args) =>
    new Promise((resolve, reject) => {
      execFile(path.join(ROOT, 'scripts', 'stack.sh'), args, { env, timeout: 120000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`stack.sh ${args.join(' ')} (${name}) failed: ${stderr || stdout || err.message}`));
        else resolve(stdout);
      });
    });
  await run('stop', 'apps');
  await run('start', 'apps');
  return { base: `http://127.0.0.1:${first}`, stop: () => run('stop', 'apps') };
}

// A real PNG of random pixels (it does not compress) of at least minBytes:
// 8-bit RGB, one filter byte per row, stored with zlib.
export function noisePng(minBytes) {
  const zlib = require('node:zlib');
  const side = Math.ceil(Math.sqrt(minBytes / 3)) + 1;
  const raw = Buffer.alloc((side * 3 + 1) * side);
  for (let i = 0; i < raw.length; i++) raw[i] = (Math.random() * 256) | 0;
  for (let y = 0; y < side; y++) raw[y * (side * 3 + 1)] = 0;
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// Runs axe-core (from frontend/node_modules) on the page as it is and returns
// its WCAG 2 A/AA violations as short lines ("rule: target ..."), [] when clean.
export async function axeViolations(page) {
  const file = require.resolve('axe-core/axe.min.js');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: file });
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 160)) }));
  });
  return found.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n}`));
}
