// idprov admin page: Bulk import of a CSV file.

import { append, h, notice, table } from '../lib/dom.js';
import { MAX_ROWS_SHOWN } from '../lib/constants.js';
import { ApiError, api, showError } from '../lib/api.js';

export function renderImport(main) {
  const file = h('input', { type: 'file', id: 'import-file', accept: '.csv,text/csv' });
  const replace = h('input', { type: 'checkbox', id: 'import-replace', checked: true });
  const output = h('div', { id: 'import-result', 'aria-live': 'polite' });
  let prepared = null; // {name, file}: the chosen file, checked by a dry run

  const check = async () => {
    output.replaceChildren();
    prepared = null;
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    prepared = { name: chosen.name, file: chosen };
    output.replaceChildren(notice('', `Checking ${chosen.name}…`));
    await send(true);
  };

  /**
   * Posts the file as it is, as a dry run or for real, and shows the
   * result. The server reads the CSV with the command-line tool's reader
   * and reports every refused row by its line.
   */
  const send = async (dryRun) => {
    const { name, file: chosen } = prepared;
    let result;
    try {
      result = await api('POST', '/idprov/admin/oob/import', {
        query: { dryRun: dryRun ? 'true' : undefined, replace: replace.checked ? undefined : 'false' },
        body: chosen,
        contentType: 'text/csv',
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 400) {
        // The file as a whole (its header, its encoding): nothing changed.
        output.replaceChildren(notice('error', `${name} cannot be imported`, e.message));
      } else {
        showError(e, output);
      }
      return;
    }
    const rejected = result.rejected || [];
    const total = result.accepted + rejected.length;
    const summary = dryRun
      ? `${result.accepted} of ${total} rows would be registered (${result.replaced} replacing a secret); ${rejected.length} ${rejected.length === 1 ? 'has a problem' : 'have problems'}. Nothing has changed yet.`
      : `${result.accepted} rows registered (${result.replaced} replaced a secret); ${rejected.length} skipped.`;
    const parts = [notice(rejected.length ? 'warn' : 'ok', dryRun ? `Checked ${name}` : `Imported ${name}`, summary)];
    if (rejected.length) {
      parts.push(h('h2', { text: dryRun ? 'Rows that would be skipped' : 'Rows skipped' }));
      const t = table([{ label: 'Line', class: 'num' }, { label: 'Device ID' }, { label: 'Problem' }],
        rejected.slice(0, MAX_ROWS_SHOWN).map((r) => [r.line ? String(r.line) : `row ${r.index + 1}`, h('span', { class: 'mono', text: r.deviceID || '' }), h('span', { text: r.error })]), '');
      t.querySelector('table').id = 'import-rejected';
      parts.push(t);
      if (rejected.length > MAX_ROWS_SHOWN) {
        parts.push(h('p', { class: 'muted', text: `… and ${rejected.length - MAX_ROWS_SHOWN} more. The command line (idprov oob import FILE --dry-run) lists them all.` }));
      }
    }
    if (dryRun && result.accepted > 0) {
      const commit = h('button', { type: 'button', class: 'primary', id: 'import-commit', text: `Import ${result.accepted} rows` });
      commit.addEventListener('click', async () => {
        commit.disabled = true;
        commit.textContent = 'Importing…';
        await send(false);
      });
      parts.push(h('div', { class: 'actions' },
        rejected.length ? h('span', { class: 'muted', text: 'Rows with problems are skipped; fix them and import the file again.' }) : null,
        commit));
    }
    if (!dryRun) {
      file.value = '';
      prepared = null;
    }
    output.replaceChildren(...parts);
  };

  file.addEventListener('change', check);
  replace.addEventListener('change', () => { if (prepared) send(true); });

  append(main, [
    h('h1', { text: 'Bulk import' }),
    h('section', { class: 'panel' },
      h('p', {}, 'A CSV file with the header ', h('code', { text: 'deviceID,secret,validUntil' }),
        ' on line 1 and one device per line; ', h('code', { text: 'validUntil' }),
        ' (RFC 3339) may be left out or empty for 3 days. The file is checked first (a dry run: nothing changes) and every problem is listed by line; then you import the valid rows in one step.'),
      h('pre', { class: 'mono muted', text: 'deviceID,secret,validUntil\nsensor-1,7K3MQ9T2XW8H4PZ1RC6VJDNB5E,\nsensor-2,"my secret, with comma",2030-01-01T00:00:00Z' }),
      h('div', { class: 'stack' },
        h('label', { for: 'import-file' }, 'CSV file', file),
        h('label', { class: 'check', for: 'import-replace' }, replace, 'Replace the secret of a device that already has one'))),
    output,
  ]);
}
