// A hash router of a few lines: "#/saved?size=50" -> { name: 'saved',
// query: { size: '50' } }. Hash routes need nothing from the server.
import { reactive } from 'vue';

export const ROUTES = [
  { name: 'live', path: '/', title: 'Live' },
  { name: 'saved', path: '/saved', title: 'Saved' },
  { name: 'dev', path: '/dev', title: 'Dev' },
];

export function parseHash(hash) {
  const h = (hash || '').replace(/^#/, '') || '/';
  const [p, qs = ''] = h.split('?');
  const path = p || '/';
  const query = Object.fromEntries(new URLSearchParams(qs));
  const route = ROUTES.find((r) => r.path === path) || ROUTES[0];
  return { name: route.name, path: route.path, query };
}

export function createRouter(win = window) {
  const current = reactive(parseHash(win.location.hash));
  const update = () => Object.assign(current, parseHash(win.location.hash));
  win.addEventListener('hashchange', update);
  return {
    current,
    href: (name) => '#' + (ROUTES.find((r) => r.name === name) || ROUTES[0]).path,
    destroy: () => win.removeEventListener('hashchange', update),
  };
}
