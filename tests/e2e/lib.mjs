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
