// The live feed's list, drawn straight into the DOM: one batch becomes one
// DocumentFragment put at the top. The list keeps the newest `limit` lines
// (messages, gap lines, burst lines); while the reader is at the top, only
// the newest `window` of them are in the document, so a batch costs the new
// items and a short list's layout, however fast frames come. Once the reader
// scrolls down or pauses, the rest are appended below, a few per animation
// frame, and the list holds still: new frames wait in a bounded queue and
// are counted, and the view offers them as "N new"; release() puts them in
// place.
import { timeOf, messageTime } from './format.js';

// A message's data as the text shown, cut when it is very long (the full
// message is one click away in the detail view).
export const MAX_TEXT = 20000;

export function dataText(data) {
  let s;
  try {
    s = JSON.stringify(data, null, 2);
  } catch {
    s = String(data);
  }
  if (s === undefined) s = String(data);
  if (s.length > MAX_TEXT) s = s.slice(0, MAX_TEXT) + `\n… (${s.length - MAX_TEXT} more characters)`;
  return s;
}

// The feed shows the start of a message: at most FEED_LINES lines, and a
// note of how many more there are (the whole message is one click away).
// Its items therefore never scroll inside, so the list holds no scroll
// containers: a batch put at the top moves plain boxes, not 200 scrolling
// layers each with its own clip.
export const FEED_LINES = 12;

export function feedText(data) {
  const s = dataText(data);
  let at = -1;
  for (let n = 0; n < FEED_LINES; n++) {
    at = s.indexOf('\n', at + 1);
    if (at < 0) return s;
  }
  let more = 1;
  for (let i = s.indexOf('\n', at + 1); i >= 0; i = s.indexOf('\n', i + 1)) more++;
  return s.slice(0, at) + `\n… ${more} more line${more === 1 ? '' : 's'}`;
}

export class FeedRenderer {
  // list: the <ol> to draw into; limit: lines the list keeps; window: lines
  // in the document while live (the rest appended when the reader holds);
  // href(msg): the link of a message's detail view, or null; drawRate: the
  // items per second a steady stream draws: a batch draws its newest items
  // as far as a budget that refills at that rate and holds up to drawBurst
  // allows (a resume's catch-up or a short burst after a quiet time is drawn
  // whole; of a faster stream, the older items of each batch are counted and
  // stand as one line); schedule: runs a function in the next animation frame.
  constructor(
    list,
    { limit = 200, window = 40, href = null, drawRate = 100, drawBurst = 25, fillStep = 20, schedule = null, now = null } = {},
  ) {
    this.list = list;
    this.limit = limit;
    this.window = Math.min(window, limit);
    this.href = href;
    this.drawRate = drawRate;
    this.drawBurst = drawBurst;
    this.budget = drawBurst;
    this.lastBatch = null;
    this.now = now || (() => (typeof performance !== 'undefined' ? performance.now() : Date.now()));
    this.fillStep = fillStep;
    this.schedule =
      schedule || ((fn) => (typeof requestAnimationFrame === 'function' ? requestAnimationFrame(fn) : setTimeout(fn, 16)));
    this.lines = []; // newest first: { frame } or { marker, kind }, each with .el once drawn
    this.inDom = 0; // lines[0 .. inDom) are the list's children, in order
    this.held = []; // frames waiting while held, oldest first (newest `limit`)
    this.heldCount = 0; // frames that arrived while held (shown as "N new")
    this.holding = false;
    this.filling = false;
  }

  // Lines the list holds (in the document or waiting below it).
  get shown() {
    return this.lines.length;
  }

  item(msg) {
    const doc = this.list.ownerDocument;
    const li = doc.createElement('li');
    li.className = 'item';
    if (msg.id) li.dataset.id = msg.id;
    const meta = doc.createElement('div');
    meta.className = 'meta';
    const at = messageTime(msg);
    const time = doc.createElement('time');
    time.dateTime = at;
    time.title = at;
    time.textContent = timeOf(at);
    meta.appendChild(time);
    if (msg.channel) {
      const ch = doc.createElement('span');
      ch.className = 'chan';
      ch.textContent = msg.channel;
      meta.appendChild(ch);
    }
    const link = this.href && msg.id ? this.href(msg) : null;
    const id = doc.createElement(link ? 'a' : 'code');
    id.className = 'id mono';
    id.textContent = msg.id || '';
    id.title = msg.id || '';
    if (link) id.href = link;
    meta.appendChild(id);
    const pre = doc.createElement('pre');
    pre.className = 'data';
    pre.textContent = feedText(msg.data);
    li.append(meta, pre);
    return li;
  }

  markerItem(text, kind) {
    const li = this.list.ownerDocument.createElement('li');
    li.className = 'marker ' + kind;
    li.dataset.kind = kind;
    li.setAttribute('role', 'note');
    li.textContent = text;
    return li;
  }

  element(line) {
    if (!line.el) line.el = line.marker !== undefined ? this.markerItem(line.marker, line.kind) : this.item(line.frame);
    return line.el;
  }

  // A line across the list (e.g. "messages may be missing here").
  marker(text, kind = 'gap') {
    if (this.holding) {
      // Kept in its place among the held frames.
      this.held.push({ marker: text, kind });
      return;
    }
    this.put([{ marker: text, kind }]);
  }

  // frames: oldest first. Drawn now, or held while the reader is elsewhere.
  push(frames) {
    if (!frames.length) return;
    if (this.holding) {
      this.heldCount += frames.length;
      for (const f of frames) this.held.push(f);
      if (this.held.length > this.limit) this.held.splice(0, this.held.length - this.limit);
      return;
    }
    const t = this.now();
    if (this.lastBatch !== null) this.budget = Math.min(this.drawBurst, this.budget + ((t - this.lastBatch) * this.drawRate) / 1000);
    this.lastBatch = t;
    const n = Math.max(1, Math.min(frames.length, Math.floor(this.budget)));
    this.budget = Math.max(0, this.budget - n);
    this.draw(frames, n);
  }

  // Draws frames (oldest first, markers among them) at the top: the newest
  // `max` of them, and a line saying how many older ones of the same batch
  // were not drawn.
  draw(frames, max = this.limit) {
    const keep = Math.min(max, this.limit);
    const take = frames.length > keep ? frames.slice(frames.length - keep) : frames;
    const lines = [];
    for (let i = take.length - 1; i >= 0; i--) {
      const f = take[i];
      lines.push(f.marker !== undefined ? { marker: f.marker, kind: f.kind } : { frame: f });
    }
    const cut = frames.length - take.length;
    if (cut > 0) {
      lines.push({
        marker: `${cut} earlier message${cut === 1 ? '' : 's'} of this burst not drawn (counted above; every one is stored)`,
        kind: 'burst',
      });
    }
    this.put(lines);
  }

  // Puts lines (newest first) at the top of the list.
  put(lines) {
    this.lines = lines.concat(this.lines);
    if (this.lines.length > this.limit) this.lines.length = this.limit;
    const room = this.holding ? this.limit : this.window;
    const frag = this.list.ownerDocument.createDocumentFragment();
    const n = Math.min(lines.length, room);
    for (let i = 0; i < n; i++) frag.appendChild(this.element(lines[i]));
    this.list.insertBefore(frag, this.list.firstChild);
    this.inDom += n;
    // The lines past the drawn ones that were in the document are no longer
    // in order below them: the document keeps the top n only.
    if (n < lines.length) this.cut(n);
    else this.cut(Math.min(room, this.lines.length));
  }

  // Leaves the first `keep` lines in the document.
  cut(keep) {
    while (this.inDom > keep && this.list.lastChild) {
      this.list.removeChild(this.list.lastChild);
      this.inDom--;
    }
  }

  // The lines below the window, appended a step per animation frame (the
  // reader is below the top, so nothing on screen moves).
  fill() {
    if (this.filling || !this.holding) return;
    this.filling = true;
    this.schedule(() => {
      this.filling = false;
      if (!this.holding) return;
      const frag = this.list.ownerDocument.createDocumentFragment();
      const end = Math.min(this.lines.length, this.inDom + this.fillStep);
      for (let i = this.inDom; i < end; i++) frag.appendChild(this.element(this.lines[i]));
      this.list.appendChild(frag);
      this.inDom = end;
      if (this.inDom < this.lines.length) this.fill();
    });
  }

  hold(on) {
    this.holding = Boolean(on);
    if (this.holding) this.fill();
    else this.release();
  }

  // Puts the held frames on screen and the list back to its window; returns
  // how many arrived while held.
  release() {
    const n = this.heldCount;
    const held = this.held;
    this.held = [];
    this.heldCount = 0;
    if (held.length) this.draw(held);
    this.cut(this.window);
    return n;
  }

  clear() {
    this.list.textContent = '';
    this.lines = [];
    this.inDom = 0;
    this.held = [];
    this.heldCount = 0;
  }
}
