// A hash router of a few lines: "#/saved?size=50" -> { name: 'saved',
// query: { size: '50' } }; "#/messages/<id>" -> { name: 'message',
// params: { id } }. Hash routes need nothing from the server, and every
// state a view keeps in its query survives a reload and follows Back.
import { reactive } from 'vue';

export const ROUTES = [
  { name: 'live', path: '/', title: 'Live', nav: true },
  { name: 'saved', path: '/saved', title: 'Saved', nav: true },
  { name: 'upload', path: '/upload', title: 'Upload', nav: true },
  { name: 'dev', path: '/dev', title: 'Dev', nav: true },
  { name: 'message', path: '/messages/', title: 'Message', param: 'id' },
];

export function parseHash(hash) {
  const h = (hash || '').replace(/^#/, '') || '/';
  const q = h.indexOf('?');
  const p = q < 0 ? h : h.slice(0, q);
  const qs = q < 0 ? '' : h.slice(q + 1);
  const path = p || '/';
  const query = Object.fromEntries(new URLSearchParams(qs));
  let params = {};
  let route = ROUTES.find((r) => !r.param && r.path === path);
  if (!route) {
    route = ROUTES.find((r) => r.param && path.startsWith(r.path) && path.length > r.path.length);
    if (route) params = { [route.param]: decodeURIComponent(path.slice(route.path.length)) };
  }
  route = route || ROUTES[0];
  return { name: route.name, path: route.path, query, params };
}

// "#/saved?size=50": the hash of a view with a query (empty values left out)
// and, for a view with a parameter, its value.
export function hrefOf(name, query = {}, param = null) {
  const route = ROUTES.find((r) => r.name === name) || ROUTES[0];
  let path = route.path;
  if (route.param && param !== null && param !== undefined) path += encodeURIComponent(param);
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    qs.set(k, String(v));
  }
  const s = qs.toString();
  return '#' + path + (s ? '?' + s : '');
}

// Moves to another state: a new history entry (Back returns here), or with
// replace the current entry is rewritten (a refinement that Back should skip).
export function navigate(name, query = {}, { replace = false, param = null, win = window } = {}) {
  const href = hrefOf(name, query, param);
  if (win.location.hash === href) return;
  if (replace) win.location.replace(href);
  else win.location.hash = href;
}

// The document title of a route: "Saved · fpesa".
export function titleOf(route, app = 'fpesa') {
  const r = ROUTES.find((x) => x.name === (route && route.name)) || ROUTES[0];
  let t = r.title;
  if (r.param && route.params && route.params[r.param]) t += ' ' + route.params[r.param];
  return t + ' · ' + app;
}

export function createRouter(win = window) {
  const current = reactive(parseHash(win.location.hash));
  const update = () => Object.assign(current, parseHash(win.location.hash));
  win.addEventListener('hashchange', update);
  return {
    current,
    href: (name) => hrefOf(name),
    destroy: () => win.removeEventListener('hashchange', update),
  };
}
