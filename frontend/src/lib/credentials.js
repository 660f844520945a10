// Credentials the Dev forms send with every request: an API key (as
// X-API-Key) or a bearer token (as Authorization), or none. Kept for the
// browser tab only (sessionStorage), never in the URL, and never logged.

const STORE = 'fpesa.credentials';

export const KINDS = ['none', 'key', 'token'];

// The headers that carry cred ({ kind, value }); {} for none or an empty value.
export function authHeaders(cred) {
  const value = cred && typeof cred.value === 'string' ? cred.value.trim() : '';
  if (!value) return {};
  if (cred.kind === 'key') return { 'X-API-Key': value };
  if (cred.kind === 'token') return { Authorization: 'Bearer ' + value.replace(/^Bearer\s+/i, '') };
  return {};
}

export function loadCredentials(storage = globalThis.sessionStorage) {
  try {
    const c = JSON.parse((storage && storage.getItem(STORE)) || 'null');
    if (c && KINDS.includes(c.kind) && typeof c.value === 'string') return { kind: c.kind, value: c.value };
  } catch {
    /* nothing usable kept */
  }
  return { kind: 'none', value: '' };
}

export function saveCredentials(cred, storage = globalThis.sessionStorage) {
  try {
    if (!storage) return;
    if (!cred || cred.kind === 'none' || !cred.value) storage.removeItem(STORE);
    else storage.setItem(STORE, JSON.stringify({ kind: cred.kind, value: cred.value }));
  } catch {
    /* storage full or denied: the credentials last for this page only */
  }
}
