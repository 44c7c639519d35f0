// idprov admin page: The dashboard.

import { append, h, link } from '../lib/dom.js';
import { DASHBOARD_REFRESH_MS } from '../lib/constants.js';
import { api, showError } from '../lib/api.js';
import { auditTable } from './audit.js';
import { current, poll } from '../lib/page.js';

export function renderDashboard(main) {
  const alive = current();
  const cards = h('div', { class: 'cards', id: 'summary' });
  const recent = h('div', { id: 'recent-audit' });
  const updated = h('span', { class: 'muted', id: 'updated' });
  const failure = h('div');
  const queueFull = h('div', { id: 'queue-full' });
  append(main, [
    h('div', { class: 'page-head' }, h('h1', { text: 'Dashboard' }), updated),
    failure, queueFull, cards,
    h('section', { class: 'panel' },
      h('div', { class: 'page-head' }, h('h2', { text: 'Recent audit events' }), link('audit', 'Whole audit log')),
      recent),
  ]);
  let last = '';
  poll(async () => {
    let summary;
    try {
      summary = await api('GET', '/idprov/admin/summary', { background: true });
    } catch (e) {
      if (alive()) showError(e, failure);
      return;
    }
    if (!alive()) return;
    failure.replaceChildren();
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    const text = JSON.stringify(summary);
    if (text === last) return; // nothing changed: keep the DOM (and focus) as is
    last = text;
    const d = summary.devices || {};
    const q = summary.waitingQueue || {};
    queueFull.replaceChildren(...(q.full ? [h('div', { class: 'notice warn' },
      h('strong', { text: `Waiting queue full since ${q.fullSince}` }),
      h('span', { text: `${q.notRecorded} requests not recorded, ${q.evicted} evicted from the sources holding the most (capacity ${q.capacity}). Devices that asked then are not in the queue: they will ask again.` }))] : []));
    const card = (value, label, route, kind = '') => {
      const body = [h('span', { class: 'value', text: value ?? 0 }), h('span', { class: 'label', text: label })];
      return route
        ? h('a', { class: `card ${kind}`, href: `#/${route}` }, body)
        : h('div', { class: `card ${kind}` }, body);
    };
    cards.replaceChildren(
      card(summary.waitingRequests, 'waiting requests', 'queue', summary.waitingRequests > 0 ? 'attention' : ''),
      card(d.total, 'devices', 'devices'),
      card(d.approved, 'approved', 'devices?status=Approved'),
      card(d.waiting, 'waiting', 'devices?status=Waiting'),
      card(d.rejected, 'rejected', 'devices?status=Rejected'),
      card(d.revoked, 'revoked', null),
      card(summary.expiringWithin7Days, 'certificates expiring within 7 days', 'devices?expiring=7',
        summary.expiringWithin7Days > 0 ? 'attention' : ''),
      card(summary.missedRenewal, 'missed their renewal', 'devices?missed=1',
        summary.missedRenewal > 0 ? 'alarm' : ''),
    );
    recent.replaceChildren(auditTable(summary.recentAudit || []));
  }, DASHBOARD_REFRESH_MS);
}
