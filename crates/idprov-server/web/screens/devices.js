// idprov admin page: Devices: the list, one device's detail, revocation and removal.

import { append, badge, deviceLink, h, link, notice, setChildren, table, toast } from '../lib/dom.js';
import { PAGE_SIZE, REASON_NAMES, REVOCATION_REASONS } from '../lib/constants.js';
import { api, showError } from '../lib/api.js';
import { ask } from '../lib/modal.js';
import { current, setQuery } from '../lib/page.js';
import { download } from '../lib/download.js';
import { protocolName, shortFingerprint, viaEl } from './queue.js';
import { timeEl } from '../lib/time.js';

export function renderDevices(main, { rest, query }) {
  if (rest.length > 0) return renderDevice(main, rest[0]);
  const alive = current();
  const filters = {
    prefix: query.get('prefix') || '',
    status: query.get('status') || '',
    expiring: query.get('expiring') || '',
    missed: query.get('missed') || '',
    after: query.get('after') || '',
  };
  const previous = [];
  const list = h('div', { id: 'device-list' });
  const pager = h('div', { class: 'pager' });
  const failure = h('div');

  const prefix = h('input', { type: 'search', id: 'device-search', value: filters.prefix, placeholder: 'Device ID starts with…', autocomplete: 'off', spellcheck: 'false' });
  const status = h('select', { id: 'device-status' },
    ['', 'Approved', 'Waiting', 'Rejected'].map((s) => h('option', { value: s, selected: s === filters.status, text: s || 'Any status' })));
  const expiring = h('input', { type: 'checkbox', id: 'device-expiring', checked: Boolean(filters.expiring) });
  const missed = h('input', { type: 'checkbox', id: 'device-missed', checked: Boolean(filters.missed) });

  const load = async () => {
    setQuery(filters);
    let page;
    try {
      page = await api('GET', '/idprov/admin/devices', {
        query: {
          prefix: filters.prefix, status: filters.status, after: filters.after, limit: PAGE_SIZE,
          expiringWithinDays: filters.expiring ? Number(filters.expiring) : undefined,
          missedRenewal: filters.missed ? 'true' : undefined,
        },
      });
    } catch (e) {
      if (alive()) showError(e, failure);
      return;
    }
    if (!alive()) return;
    failure.replaceChildren();
    list.replaceChildren(devicesTable(page.items));
    setChildren(pager,
      filters.after ? h('button', { type: 'button', class: 'small', text: previous.length ? 'Previous' : 'First page', on: { click: () => { filters.after = previous.pop() || ''; load(); } } }) : null,
      page.next ? h('button', { type: 'button', class: 'small', id: 'devices-next', text: 'Next', on: { click: () => { previous.push(filters.after); filters.after = page.next; load(); } } }) : null,
    );
  };
  const restart = () => { filters.after = ''; previous.length = 0; load(); };

  let debounce = 0;
  prefix.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { filters.prefix = prefix.value.trim(); restart(); }, 250);
  });
  status.addEventListener('change', () => { filters.status = status.value; restart(); });
  expiring.addEventListener('change', () => { filters.expiring = expiring.checked ? '7' : ''; restart(); });
  missed.addEventListener('change', () => { filters.missed = missed.checked ? '1' : ''; restart(); });

  append(main, [
    h('div', { class: 'page-head' }, h('h1', { text: 'Devices' }),
      h('button', { type: 'button', class: 'small', text: 'Refresh', on: { click: load } })),
    h('form', { class: 'panel', role: 'search', on: { submit: (e) => { e.preventDefault(); filters.prefix = prefix.value.trim(); restart(); } } },
      h('div', { class: 'row' },
        h('label', { class: 'grow', for: 'device-search' }, 'Search', prefix),
        h('label', { for: 'device-status' }, 'Status', status)),
      h('div', { class: 'row' },
        h('label', { class: 'check', for: 'device-expiring' }, expiring, 'Certificate expires within 7 days'),
        h('label', { class: 'check', for: 'device-missed' }, missed, 'Missed its renewal'))),
    failure,
    h('section', { class: 'panel' }, list, pager),
  ]);
  load();
}

export function devicesTable(items) {
  const columns = [
    { label: 'Device', class: 'device' }, { label: 'Status' }, { label: 'Valid until' }, { label: 'Last issued' },
    { label: 'Certificates', class: 'num' }, { label: 'Secret' }, { label: 'Waiting', class: 'num' }, { label: 'Since' },
  ];
  const rows = items.map((d) => [
    deviceLink(d.deviceID),
    badge(d.status),
    d.validUntil ? timeEl(d.validUntil, { withRelative: true }) : h('span', { class: 'muted', text: '—' }),
    h('span', {}, timeEl(d.lastIssuedAt), viaEl(d.protocol)),
    `${d.certificates ?? 0}${d.revoked ? ` (${d.revoked} revoked)` : ''}`,
    d.liveSecret ? 'registered' : h('span', { class: 'muted', text: 'none' }),
    String(d.waiting ?? 0),
    timeEl(d.createdAt),
  ]);
  const t = table(columns, rows, 'No device matches.');
  t.querySelectorAll('tbody tr').forEach((tr, i) => { if (items[i]) tr.dataset.device = items[i].deviceID; });
  return t;
}

export async function renderDevice(main, id) {
  const alive = current();
  const result = h('div');
  const body = h('div', { id: 'device-detail' });
  append(main, [
    h('p', {}, link('devices', '← Devices')),
    h('h1', {}, 'Device ', h('span', { class: 'mono', text: id })),
    result, body,
  ]);
  const load = async () => {
    let detail;
    try {
      detail = await api('GET', `/idprov/admin/devices/${encodeURIComponent(id)}`);
    } catch (e) {
      if (!alive()) return;
      if (e.status === 404) body.replaceChildren(notice('warn', 'Unknown device', 'The registry has no record of this device ID.'));
      else showError(e, body);
      return;
    }
    if (!alive()) return;
    const d = detail.device || {};
    const certs = detail.certificates || [];
    const valid = certs.filter((c) => !c.revokedAt);
    const facts = h('dl', { class: 'facts' },
      h('dt', { text: 'Status' }), h('dd', { id: 'device-status-value' }, badge(d.status)),
      h('dt', { text: 'Valid until' }), h('dd', {}, d.validUntil ? timeEl(d.validUntil, { withRelative: true }) : '—'),
      h('dt', { text: 'Current serial' }), h('dd', { class: 'mono', text: d.serial || '—' }),
      h('dt', { text: 'Last issued' }), h('dd', {}, timeEl(d.lastIssuedAt)),
      h('dt', { text: 'Certificates' }), h('dd', { text: `${d.certificates ?? 0} issued, ${d.revoked ?? 0} revoked` }),
      h('dt', { text: 'OOB secret' }), h('dd', { text: d.liveSecret ? 'registered, unused' : 'none' }),
      h('dt', { text: 'Waiting requests' }), h('dd', {}, String(d.waiting ?? 0), d.waiting ? [' · ', link('queue', 'waiting queue')] : null),
      h('dt', { text: 'Known since' }), h('dd', {}, timeEl(d.createdAt)));
    const actions = h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'unlock', text: 'Clear lockouts', title: 'Forget failed secret attempts from every address', on: { click: () => unlockDevice(id, result) } }),
      h('button', { type: 'button', id: 'remove', text: 'Remove…', on: { click: () => removeDevice(id, result) } }),
      h('button', { type: 'button', id: 'revoke', class: 'danger', disabled: valid.length === 0, text: 'Revoke…', on: { click: () => revokeDevice(id, valid, result, load) } }));
    body.replaceChildren(
      h('section', { class: 'panel' }, facts, actions),
      h('section', { class: 'panel' }, h('h2', { text: 'Certificate history' }), certificateTable(certs)));
  };
  await load();
}

export function certificateTable(certs) {
  const columns = [
    { label: 'Serial' }, { label: 'Issued' }, { label: 'How' }, { label: 'Key' },
    { label: 'Valid' }, { label: 'Revoked' }, { label: '' },
  ];
  const rows = certs.map((c) => [
    h('code', { text: c.serial }),
    timeEl(c.issuedAt),
    h('span', {}, h('span', { text: [c.issueKind, protocolName(c.protocol)].filter(Boolean).join(' · ') }), h('span', { class: 'sub', text: c.authorizedBy ? `by ${c.authorizedBy}` : '' })),
    h('span', {}, h('span', { text: c.keyType || '' }), h('code', { class: 'sub', title: c.keyFingerprint, text: shortFingerprint(c.keyFingerprint) })),
    h('span', {}, timeEl(c.notBefore), h('span', { class: 'sub' }, 'to ', timeEl(c.notAfter))),
    c.revokedAt
      ? h('span', {}, badge('revoked'), h('span', { class: 'sub' }, timeEl(c.revokedAt), ` · ${REASON_NAMES[c.revocationReason] ?? c.revocationReason ?? ''}`))
      : h('span', { class: 'muted', text: 'no' }),
    c.pem ? h('button', { type: 'button', class: 'small', text: 'PEM', title: 'Download this certificate', on: { click: () => download(new Blob([c.pem], { type: 'application/x-pem-file' }), `${c.serial}.pem`) } }) : null,
  ]);
  return table(columns, rows, 'No certificate has been issued to this device.');
}

export async function revokeDevice(id, valid, result, reload) {
  const reason = h('select', { id: 'revoke-reason' }, REVOCATION_REASONS.map(([v, t]) => h('option', { value: v, text: t })));
  const note = h('input', { type: 'text', id: 'revoke-note', maxlength: 1024, placeholder: 'e.g. stolen from the lobby' });
  const ok = await ask({
    title: `Revoke ${id}?`,
    body: [
      h('p', { text: `Its ${valid.length === 1 ? 'valid certificate' : `${valid.length} valid certificates`} will be revoked: services that read the CRL refuse ${valid.length === 1 ? 'it' : 'them'} and the device can no longer renew. This cannot be undone; the device needs a new secret or approval to get a new certificate.` }),
      h('label', { for: 'revoke-reason' }, 'Reason', reason),
      h('label', { for: 'revoke-note' }, 'Note for the audit log', note),
    ],
    ok: 'Revoke',
    danger: true,
  });
  if (!ok) return;
  try {
    const r = await api('POST', `/idprov/admin/devices/${encodeURIComponent(id)}/revoke`, { json: { reason: reason.value, note: note.value } });
    result.replaceChildren(notice('ok', `Revoked ${r.serials.length} certificate${r.serials.length === 1 ? '' : 's'}`, `CRL number ${r.crlNumber} is published.`));
  } catch (e) {
    showError(e, result);
  }
  reload();
}

export async function removeDevice(id, result) {
  const ok = await ask({
    title: `Remove ${id}?`,
    body: [h('p', { text: 'Revokes every certificate of this device and forgets it: its secret, its waiting requests and its decisions. The audit log keeps its history.' })],
    ok: 'Revoke and remove',
    danger: true,
  });
  if (!ok) return;
  try {
    await api('DELETE', `/idprov/admin/devices/${encodeURIComponent(id)}`);
    toast(`Removed ${id}.`);
    location.hash = '#/devices';
  } catch (e) {
    showError(e, result);
  }
}

export async function unlockDevice(id, result) {
  try {
    const r = await api('POST', `/idprov/admin/devices/${encodeURIComponent(id)}/unlock`);
    result.replaceChildren(notice('ok', 'Lockouts cleared', `${r.cleared} counter${r.cleared === 1 ? '' : 's'} cleared.`));
  } catch (e) {
    showError(e, result);
  }
}
