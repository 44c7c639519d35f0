// idprov admin page: Hash routing helpers and the current page's lifetime (timers, polling).

import { downloads, state } from './state.js';

/** `#/devices/abc?x=1` → {name: 'devices', rest: ['abc'], query}. */
export function parseHash() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [path, qs = ''] = hash.split('?');
  const [name = '', ...rest] = path.split('/');
  let decoded;
  try {
    decoded = rest.map(decodeURIComponent);
  } catch {
    decoded = [];
  }
  return { name: name || 'dashboard', rest: decoded, query: new URLSearchParams(qs) };
}

/** Rewrites the hash's query without re-rendering the page (filters, paging). */
export function setQuery(params) {
  const { name, rest } = parseHash();
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) qs.set(k, String(v));
  const path = [name, ...rest.map(encodeURIComponent)].join('/');
  const s = qs.toString();
  history.replaceState(null, '', `#/${path}${s ? `?${s}` : ''}`);
}


/** Stops the previous page's timers and camera. */
export function leavePage() {
  state.generation++;
  for (const url of downloads.splice(0)) URL.revokeObjectURL(url);
  for (const cleanup of state.cleanups.splice(0)) {
    try { cleanup(); } catch { /* already stopped */ }
  }
}

/** The current page's generation: async work checks it before touching the DOM. */
export function current() {
  const generation = state.generation;
  return () => generation === state.generation;
}

/**
 * Runs `fn` now and again `ms` after each run ends (never overlapping),
 * while the page is shown; skipped while the tab is hidden.
 */
export function poll(fn, ms) {
  const alive = current();
  let timer = 0;
  const tick = async () => {
    if (!alive()) return;
    if (!document.hidden) {
      try { await fn(); } catch { /* fn shows its own errors */ }
    }
    if (alive()) timer = setTimeout(tick, ms);
  };
  state.cleanups.push(() => clearTimeout(timer));
  tick();
}
