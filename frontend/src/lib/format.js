// Display helpers shared by the views.
export function timeOf(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function dateTimeOf(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleDateString() + ' ' + timeOf(iso);
}

// UUIDv7 ids carry their time in the first 48 bits: a fallback when a frame
// has no received_at.
export function timeFromUuid7(id) {
  if (typeof id !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-7/i.test(id)) return null;
  const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

// The time to show for a message: received_at when it has sub-second
// precision; otherwise (the broker's timestamp has whole seconds) the
// millisecond time of its UUIDv7 id, minted when the message was accepted.
export function messageTime(msg) {
  const at = msg && typeof msg.received_at === 'string' ? msg.received_at : '';
  if (/\.\d+/.test(at)) return at;
  return timeFromUuid7(msg && msg.id) || at;
}
