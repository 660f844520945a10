// Thin fetch helpers for the REST API under /api/v1/.
export const API_BASE = '/api/v1';

// Sends a request and reads everything a person wants to see about the answer.
export async function send({ method, url, headers = {}, body }, { signal } = {}) {
  const t0 = performance.now();
  const res = await fetch(url, { method, headers, body, signal, cache: 'no-store' });
  const text = await res.text();
  const ms = performance.now() - t0;
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const hdrs = [];
  res.headers.forEach((v, k) => hdrs.push([k, v]));
  hdrs.sort((a, b) => a[0].localeCompare(b[0]));
  return { status: res.status, statusText: res.statusText, ok: res.ok, headers: hdrs, text, json, ms };
}

// The "error" object of an error answer, or one made up from the status.
export function errorOf(r) {
  if (r.json && r.json.error && typeof r.json.error === 'object') return r.json.error;
  return { code: r.status, description: r.text ? r.text.slice(0, 300) : 'HTTP ' + r.status };
}

export function pretty(v) {
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}
