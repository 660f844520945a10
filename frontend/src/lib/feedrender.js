// The live feed's list, drawn straight into the DOM: one batch (the frames
// of one animation frame) becomes one DocumentFragment put at the top, and
// the items past the limit are cut from the bottom. The cost of a batch is
// the new items alone, however long the list is and however fast frames come,
// so a burst never turns into one style/layout pass per message.
//
// While the reader is not at the top (scrolled down, or paused), nothing on
// screen moves: new frames wait in a bounded queue and are counted, and the
// view offers them as "N new"; release() puts them in place.
import { timeOf, messageTime } from './format.js';

// A message's data as the text shown, cut when it is very long (the item
// box scrolls; the full message is one click away in the detail view).
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

export class FeedRenderer {
  // list: the <ol> to draw into; limit: items kept on screen; href(msg): the
  // link of a message's detail view, or null; drawMax: the most items one
  // live batch draws (the newest; the older ones of a burst are counted and
  // stand as one line), so that a burst never makes one long frame.
  constructor(list, { limit = 200, href = null, drawMax = 25 } = {}) {
    this.list = list;
    this.limit = limit;
    this.href = href;
    this.drawMax = drawMax;
    this.held = []; // frames waiting while held, oldest first (newest `limit`)
    this.heldCount = 0; // frames that arrived while held (shown as "N new")
    this.holding = false;
    this.shown = 0;
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
    pre.textContent = dataText(msg.data);
    li.append(meta, pre);
    return li;
  }

  // A line across the list (e.g. "messages may be missing here").
  marker(text, kind = 'gap') {
    if (this.holding) {
      // Kept in its place among the held frames.
      this.held.push({ marker: text, kind });
      return;
    }
    this.list.insertBefore(this.markerItem(text, kind), this.list.firstChild);
    this.shown++;
    this.trim();
  }

  markerItem(text, kind) {
    const li = this.list.ownerDocument.createElement('li');
    li.className = 'marker ' + kind;
    li.dataset.kind = kind;
    li.setAttribute('role', 'note');
    li.textContent = text;
    return li;
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
    this.draw(frames, this.drawMax);
  }

  // Draws frames (oldest first) at the top: the newest `max` of them, and a
  // line saying how many older ones of the same batch were not drawn.
  draw(frames, max = this.limit) {
    const keep = Math.min(max, this.limit);
    const take = frames.length > keep ? frames.slice(frames.length - keep) : frames;
    const frag = this.list.ownerDocument.createDocumentFragment();
    for (let i = take.length - 1; i >= 0; i--) {
      const f = take[i];
      frag.appendChild(f.marker !== undefined ? this.markerItem(f.marker, f.kind) : this.item(f));
    }
    const cut = frames.length - take.length;
    if (cut > 0) {
      frag.appendChild(this.markerItem(`${cut} earlier message${cut === 1 ? '' : 's'} of this burst not drawn (counted above; every one is stored)`, 'burst'));
      this.shown++;
    }
    this.list.insertBefore(frag, this.list.firstChild);
    this.shown += take.length;
    this.trim();
  }

  trim() {
    while (this.shown > this.limit && this.list.lastChild) {
      this.list.removeChild(this.list.lastChild);
      this.shown--;
    }
  }

  hold(on) {
    this.holding = Boolean(on);
    if (!this.holding) this.release();
  }

  // Puts the held frames on screen; returns how many arrived while held.
  release() {
    const n = this.heldCount;
    const held = this.held;
    this.held = [];
    this.heldCount = 0;
    if (held.length) this.draw(held);
    return n;
  }

  clear() {
    this.list.textContent = '';
    this.shown = 0;
    this.held = [];
    this.heldCount = 0;
  }
}
