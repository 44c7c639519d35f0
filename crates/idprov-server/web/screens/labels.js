// idprov admin page: Label sheets with new secrets.

import { append, badge, h, notice, setChildren } from '../lib/dom.js';
import { api, showError } from '../lib/api.js';
import { ask } from '../lib/modal.js';
import { current } from '../lib/page.js';
import { download, filenameOf } from '../lib/download.js';
import { state } from '../lib/state.js';

export function renderLabels(main) {
  const alive = current();
  const ids = h('textarea', { id: 'label-ids', rows: 6, spellcheck: 'false', placeholder: 'sensor-1\nsensor-2' });
  ids.value = [...state.labelSelection].join('\n');
  const format = h('select', { id: 'label-format' },
    h('option', { value: 'svg', text: 'SVG (prints sharp at any size)' }),
    h('option', { value: 'png', text: 'PNG' }));
  const v2Only = h('input', { type: 'checkbox', id: 'label-v2-only' });
  const output = h('div', { id: 'label-result' });
  const found = h('div', { class: 'picker', id: 'label-picker' });
  const search = h('input', { type: 'search', id: 'label-search', placeholder: 'Device ID starts with…', autocomplete: 'off', spellcheck: 'false' });
  const statusFilter = h('select', { id: 'label-status' },
    ['', 'Waiting', 'Approved', 'Rejected'].map((s) => h('option', { value: s, text: s || 'Any status' })));

  const chosen = () => ids.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
  const syncSelection = () => {
    state.labelSelection = new Set(chosen());
  };
  ids.addEventListener('input', syncSelection);

  const loadPicker = async () => {
    let page;
    try {
      page = await api('GET', '/idprov/admin/devices', { query: { prefix: search.value.trim(), status: statusFilter.value, limit: 100 } });
    } catch (e) {
      if (alive()) showError(e, found);
      return;
    }
    if (!alive()) return;
    const selected = new Set(chosen());
    setChildren(found, ...(page.items.length ? page.items.map((d) => h('label', { class: 'check' },
      h('input', {
        type: 'checkbox', checked: selected.has(d.deviceID),
        on: {
          change: (e) => {
            const now = new Set(chosen());
            if (e.target.checked) now.add(d.deviceID); else now.delete(d.deviceID);
            ids.value = [...now].join('\n');
            syncSelection();
          },
        },
      }),
      h('span', { class: 'mono', text: d.deviceID }), ' ', badge(d.status))) : [h('p', { class: 'muted', text: 'No device matches.' })]),
    page.next ? h('p', { class: 'hint', text: 'More devices match: narrow the search.' }) : null);
  };
  let debounce = 0;
  search.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(loadPicker, 250); });
  statusFilter.addEventListener('change', loadPicker);

  const generate = async () => {
    const list = [...new Set(chosen())];
    // The server checks every device ID before it replaces any secret.
    if (list.length === 0) { output.replaceChildren(notice('error', 'No device chosen')); return; }
    const ok = await ask({
      title: `Replace the secrets of ${list.length} device${list.length === 1 ? '' : 's'}?`,
      body: [
        h('p', { text: 'Each device gets a new, generated secret, and the sheet shows it as a QR label. Any secret these devices had is replaced: labels printed earlier for them stop working.' }),
        h('p', { text: 'The sheet holds the secrets in the clear: print it, stick the labels on, and delete the file.' }),
      ],
      ok: 'Generate and download',
      danger: true,
    });
    if (!ok) return;
    output.replaceChildren(notice('', 'Generating…'));
    try {
      const response = await api('POST', '/idprov/admin/labels', { json: { deviceIDs: list, format: format.value, pakeOnly: v2Only.checked }, raw: true });
      const blob = await response.blob();
      const name = filenameOf(response.headers.get('Content-Disposition')) || `idprov-labels.${format.value}`;
      const url = download(blob, name);
      output.replaceChildren(
        notice('ok', `New secrets for ${list.length} device${list.length === 1 ? '' : 's'}`, 'The sheet was downloaded. Their previous secrets no longer work.'),
        h('p', {}, h('a', { href: url, download: name, class: 'button', id: 'label-download', text: `Download ${name} again` })),
        h('div', { class: 'preview' }, h('img', { src: url, alt: 'The label sheet' })));
      state.labelSelection.clear();
    } catch (e) {
      showError(e, output);
    }
  };

  append(main, [
    h('h1', { text: 'Labels' }),
    notice('warn', 'Generating labels replaces secrets',
      'Every chosen device gets a new, generated secret printed on its label; the secret it had before stops working, including any label already printed for it. Use it for devices that have not been provisioned yet, or to re-label.'),
    h('div', { class: 'split' },
      h('section', { class: 'panel stack' },
        h('label', { for: 'label-ids' }, 'Device IDs', h('span', { class: 'hint', text: 'One per line (or separated by spaces or commas). Pick from the list, or from the secrets page.' })),
        ids,
        h('label', { for: 'label-format' }, 'Format', format),
        h('label', { class: 'check', for: 'label-v2-only' }, v2Only, 'For idprov v2 only',
          h('span', { class: 'hint', text: 'SPAKE2+: the server keeps no form of the secrets, and the labels say idprov:2, so the devices never use v1.' })),
        h('div', {}, h('button', { type: 'button', class: 'danger', id: 'label-generate', text: 'Generate new secrets and download sheet', on: { click: generate } }))),
      h('section', { class: 'panel stack' },
        h('h2', { text: 'Pick devices' }),
        h('div', { class: 'row' }, h('div', { class: 'grow' }, search), statusFilter),
        found)),
    output,
  ]);
  loadPicker();
}
