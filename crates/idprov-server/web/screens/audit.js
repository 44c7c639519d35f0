// idprov admin page: The audit log.

import { $, append, deviceLink, h, notice, setChildren, table } from '../lib/dom.js';
import { PAGE_SIZE } from '../lib/constants.js';
import { state } from '../lib/state.js';
import { api, showError } from '../lib/api.js';
import { current, setQuery } from '../lib/page.js';
import { timeEl } from '../lib/time.js';

export function auditTable(entries) {
  const columns = [{ label: 'Seq', class: 'num' }, { label: 'Time' }, { label: 'Event' }, { label: 'Device' }, { label: 'Actor' }, { label: 'Detail', class: 'detail' }];
  const rows = entries.map((e) => [
    String(e.seq),
    timeEl(e.time || e.at),
    h('span', { text: e.event }),
    e.deviceID ? deviceLink(e.deviceID) : h('span', { class: 'muted', text: '—' }),
    h('span', { text: e.actor || '' }),
    detailText(e.detail),
  ]);
  return table(columns, rows, 'No audit entry yet.');
}

/** One detail value; times the server logs as Unix seconds read as local times. */
export function detailValue(key, value) {
  if (typeof value === 'number' && value > 1e9 && /(At|Until|notAfter|notBefore)$/.test(key)) {
    return new Date(value * 1000).toLocaleString();
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** An audit entry's detail object as compact text (never as markup). */
export function detailText(detail) {
  if (!detail || (typeof detail === 'object' && Object.keys(detail).length === 0)) return h('span', { class: 'muted', text: '' });
  const text = Object.entries(detail).map(([k, v]) => `${k}: ${detailValue(k, v)}`).join(', ');
  return h('code', { text });
}

export function renderAudit(main, { query }) {
  const alive = current();
  const chain = h('div', { id: 'audit-chain' });
  const list = h('div', { id: 'audit-list' });
  const pager = h('div', { class: 'pager' });
  const filters = { deviceID: query.get('deviceID') || '', event: query.get('event') || '' };
  const device = h('input', { type: 'search', id: 'audit-device', value: filters.deviceID, placeholder: 'Any device', autocomplete: 'off', spellcheck: 'false' });
  const event = h('input', { type: 'search', id: 'audit-event', value: filters.event, list: 'audit-events', placeholder: 'Any event', autocomplete: 'off', spellcheck: 'false' });
  let entries = 0;
  let after = null; // null: the newest page
  let limit = PAGE_SIZE; // smaller only for the oldest page, so pages do not overlap
  const previous = [];

  const loadStatus = async () => {
    try {
      const s = await api('GET', '/idprov/admin/audit/status');
      if (!alive()) return;
      entries = s.entries;
      const last = s.lastCheckpointSeq == null ? 'none yet' : `at entry ${s.lastCheckpointSeq}`;
      // The server's own sentence when it gives one (it says what is not yet checkpointed).
      const summary = typeof s.message === 'string' && s.message
        ? s.message
        : `${s.entries} entries; ${s.checkpoints} signed checkpoint${s.checkpoints === 1 ? '' : 's'}, the latest ${last}.`;
      chain.replaceChildren(s.verified
        ? notice('ok', 'The hash chain verifies', summary)
        : notice('error', 'The audit chain does NOT verify', s.error || 'An entry was changed or removed.', ` ${s.entries} entries; ${s.checkpoints} checkpoints, the latest ${last}.`));
    } catch (e) {
      if (alive()) showError(e, chain);
    }
  };

  const load = async () => {
    setQuery(filters);
    const filtered = Boolean(filters.deviceID || filters.event);
    // Sequence numbers count from 1 without gaps, so the newest unfiltered
    // page starts after entries - PAGE_SIZE. Filtered views page from the start.
    let start = after;
    if (start === null) start = filtered ? 0 : Math.max(0, entries - PAGE_SIZE);
    let page;
    try {
      page = await api('GET', '/idprov/admin/audit', { query: { after: start || undefined, limit, deviceID: filters.deviceID, event: filters.event } });
    } catch (e) {
      if (alive()) showError(e, list);
      return;
    }
    if (!alive()) return;
    const items = page.items.slice().reverse(); // newest first within the page
    list.replaceChildren(auditTable(items));
    limit = PAGE_SIZE;
    const older = !filtered && start > 0;
    const goOlder = () => {
      after = Math.max(0, start - PAGE_SIZE);
      limit = start - after;
      load();
    };
    setChildren(pager,
      older ? h('button', { type: 'button', class: 'small', text: 'Older', on: { click: goOlder } }) : null,
      filtered && previous.length ? h('button', { type: 'button', class: 'small', text: 'Previous', on: { click: () => { after = previous.pop(); load(); } } }) : null,
      page.next && (filtered || start + page.items.length < entries) ? h('button', { type: 'button', class: 'small', text: filtered ? 'Next' : 'Newer', on: { click: () => { previous.push(start); after = Number(page.next); load(); } } }) : null,
      !filtered && after !== null ? h('button', { type: 'button', class: 'small', text: 'Newest', on: { click: async () => { after = null; await loadStatus(); load(); } } }) : null,
    );
  };

  const apply = (e) => {
    if (e) e.preventDefault();
    filters.deviceID = device.value.trim();
    filters.event = event.value.trim();
    after = null;
    previous.length = 0;
    load();
  };

  append(main, [
    h('div', { class: 'page-head' }, h('h1', { text: 'Audit log' }),
      h('button', { type: 'button', class: 'small', text: 'Refresh', on: { click: async () => { await loadStatus(); load(); } } })),
    chain,
    h('form', { class: 'panel', role: 'search', on: { submit: apply } },
      h('div', { class: 'row' },
        h('label', { class: 'grow', for: 'audit-device' }, 'Device ID', device),
        h('label', { class: 'grow', for: 'audit-event' }, 'Event', event),
        h('datalist', { id: 'audit-events' }, (state.session?.auditEvents ?? []).map((v) => h('option', { value: v }))),
        h('button', { type: 'submit', text: 'Filter' }))),
    h('section', { class: 'panel' }, list, pager),
  ]);
  loadStatus().then(load);
}
