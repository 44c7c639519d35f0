// idprov admin page: The waiting queue.

import { append, badge, h, setChildren, table, toast } from '../lib/dom.js';
import { PAGE_SIZE, QUEUE_REFRESH_MS } from '../lib/constants.js';
import { api, showError } from '../lib/api.js';
import { ask } from '../lib/modal.js';
import { current, poll } from '../lib/page.js';
import { state } from '../lib/state.js';
import { timeEl, toDate } from '../lib/time.js';

export function renderQueue(main) {
  const alive = current();
  const list = h('div', { id: 'queue-list' });
  const updated = h('span', { class: 'muted', id: 'updated' });
  const failure = h('div');
  const pager = h('div', { class: 'pager' });
  let after = null;
  const previous = [];
  append(main, [
    h('div', { class: 'page-head' }, h('h1', { text: 'Waiting queue' }), updated),
    h('p', { class: 'muted', text: 'Devices that asked for a certificate without a valid secret. Approving a request lets that device, with that key, receive a certificate on its next attempt (it retries every minute). Check the key fingerprint against the device when you can.' }),
    failure,
    h('section', { class: 'panel' }, list, pager),
  ]);

  let last = '';
  const refresh = async (force = false) => {
    let page;
    try {
      page = await api('GET', '/idprov/admin/requests', { query: { after, limit: PAGE_SIZE }, background: !force });
    } catch (e) {
      if (alive()) showError(e, failure);
      return;
    }
    if (!alive()) return;
    failure.replaceChildren();
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    const text = JSON.stringify(page);
    if (text === last && !force) return;
    last = text;
    list.replaceChildren(queueTable(page.items, () => refresh(true)));
    setChildren(pager,
      previous.length ? h('button', { type: 'button', class: 'small', text: 'Previous', on: { click: () => { after = previous.pop(); refresh(true); } } }) : null,
      page.next ? h('button', { type: 'button', class: 'small', text: 'Next', on: { click: () => { previous.push(after); after = page.next; refresh(true); } } }) : null,
    );
  };
  poll(refresh, QUEUE_REFRESH_MS);
}

export function queueTable(items, refresh) {
  const columns = [
    { label: 'Device', class: 'device' }, { label: 'State' }, { label: 'Claimed IP', class: 'addr' }, { label: 'Claimed MAC', class: 'addr' },
    { label: 'Source', class: 'addr' }, { label: 'Key' }, { label: 'Last seen' },
    { label: 'Attempts', class: 'num' }, { label: 'Actions' },
  ];
  const rows = items.map((r) => {
    let state = badge(r.state);
    if (r.state === 'approved') {
      state = h('span', {}, badge('approved'), h('span', { class: 'sub' }, `by ${r.decidedBy || '?'}`,
        r.approvalExpiresAt ? [', until ', timeEl(r.approvalExpiresAt)] : null));
    } else if (r.state === 'rejected') {
      state = h('span', {}, badge('rejected'), h('span', { class: 'sub', text: r.rejectionReason ? `“${r.rejectionReason}”` : `by ${r.decidedBy || '?'}` }));
    }
    const actions = h('div', { class: 'inline-actions' },
      r.state !== 'approved' ? h('button', { type: 'button', class: 'small primary', dataset: { action: 'approve', device: r.deviceID }, text: 'Approve', on: { click: () => decide('approve', r, refresh) } }) : null,
      r.state !== 'rejected' ? h('button', { type: 'button', class: 'small', dataset: { action: 'reject', device: r.deviceID }, text: 'Reject…', on: { click: () => decide('reject', r, refresh) } }) : null,
      h('button', { type: 'button', class: 'small', dataset: { action: 'clear', device: r.deviceID }, text: 'Clear', title: 'Forget this request (and its approval or rejection)', on: { click: () => decide('clear', r, refresh) } }));
    return [
      h('span', { class: 'mono', text: r.deviceID }),
      state,
      h('span', { class: 'mono claimed-ip', text: r.claimedIP ?? '' }),
      h('span', { class: 'mono claimed-mac', text: r.claimedMAC ?? '' }),
      h('span', {}, h('span', { class: 'mono', text: r.source ?? '' }), viaEl(r.protocol)),
      h('span', {}, h('span', { text: r.keyType || '' }),
        h('code', { class: 'sub', title: r.keyFingerprint, text: shortFingerprint(r.keyFingerprint) })),
      h('span', {}, timeEl(r.lastSeen, { withRelative: true }), h('span', { class: 'sub' }, 'first ', timeEl(r.firstSeen))),
      String(r.attempts ?? ''),
      actions,
    ];
  });
  const t = table(columns, rows, 'No device is waiting. A device that asks without a valid secret appears here within seconds.');
  t.querySelectorAll('tbody tr').forEach((tr, i) => { if (items[i]) tr.dataset.device = items[i].deviceID; });
  return t;
}

/** The protocol a device asked by, under another value: "via EST". */
export function viaEl(protocol) {
  return protocol ? h('span', { class: 'sub via', text: `via ${protocolName(protocol)}` }) : null;
}

/** How a protocol is named to a person: "idprov v1", "idprov v2", "EST". */
export function protocolName(protocol) {
  return { v1: 'idprov v1', v2: 'idprov v2', est: 'EST' }[protocol] ?? protocol ?? '';
}

export function shortFingerprint(fp) {
  if (!fp) return '';
  return fp.length > 16 ? `${fp.slice(0, 16)}…` : fp;
}

/** Approve, reject (with a reason) or clear one waiting request. */
export async function decide(action, request, refresh) {
  const body = { keyFingerprint: request.keyFingerprint };
  if (action === 'reject') {
    const reason = h('textarea', { id: 'reject-reason', maxlength: 1024, rows: 3, placeholder: 'e.g. not one of ours' });
    const ok = await ask({
      title: `Reject ${request.deviceID}?`,
      body: [
        h('p', { text: 'Its requests with this key are answered Rejected until you clear them.' }),
        h('label', { for: 'reject-reason' }, 'Reason (kept in the audit log)'), reason,
      ],
      ok: 'Reject',
      danger: true,
    });
    if (!ok) return;
    // The server refuses control characters in reasons; line breaks become spaces.
    body.reason = reason.value.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  }
  try {
    const result = await api('POST', `/idprov/admin/requests/${encodeURIComponent(request.deviceID)}/${action}`, { json: body });
    const verb = { approve: 'Approved', reject: 'Rejected', clear: 'Cleared' }[action];
    const until = result && result.expiresAt ? ` (its next request is approved until ${toDate(result.expiresAt).toLocaleString()})` : '';
    toast(`${verb} ${request.deviceID}${until}.`);
  } catch (e) {
    showError(e);
  }
  refresh();
}
