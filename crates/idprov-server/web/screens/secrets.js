// idprov admin page: OOB secrets: register one (typed, pasted, scanned), list and remove.

import { append, deviceLink, h, link, notice, setChildren, table, toast } from '../lib/dom.js';
import { PAGE_SIZE } from '../lib/constants.js';
import { ApiError, api, showError } from '../lib/api.js';
import { caFingerprint } from '../lib/session.js';
import { ask } from '../lib/modal.js';
import { current } from '../lib/page.js';
import { rfc3339FromLocal, timeEl } from '../lib/time.js';
import { startCamera } from '../lib/camera.js';
import { state } from '../lib/state.js';

export function renderSecrets(main) {
  const alive = current();
  const result = h('div', { id: 'secret-result' });
  const list = h('div', { id: 'secret-list' });
  const pager = h('div', { class: 'pager' });
  const fingerprint = h('code', { id: 'ca-fingerprint', text: '…' });
  let generated = false; // the secret field holds a secret made here, to be shown once
  let acceptMismatch = false;

  // The label field: a keyboard-wedge scanner types the URI and presses
  // Enter, which submits the form; pasting fills the fields below at once.
  const labelInput = h('input', {
    type: 'text', id: 'label-uri', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
    placeholder: 'idprov:1?id=…&s=…&ca=…',
  });
  const labelState = h('div', { id: 'label-state', class: 'hint', 'aria-live': 'polite' });
  const idInput = h('input', { type: 'text', id: 'secret-device', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 128 });
  const secretInput = h('input', { type: 'password', id: 'secret-value', autocomplete: 'off', spellcheck: 'false' });
  const validInput = h('input', { type: 'datetime-local', id: 'secret-valid-until' });
  const showSecret = h('input', { type: 'checkbox', id: 'secret-show' });
  const v2Only = h('input', { type: 'checkbox', id: 'secret-v2-only' });
  showSecret.addEventListener('change', () => { secretInput.type = showSecret.checked ? 'text' : 'password'; });
  secretInput.addEventListener('input', () => { generated = false; });

  const camera = h('div', { class: 'camera', hidden: true, id: 'camera' });

  /**
   * Asks the server what a label or a typed entry stands for: it parses
   * and validates both with the rules a registration uses. Resolves to
   * {checked} or {error, field}; a failure to reach the server throws.
   */
  const check = async (body) => {
    try {
      return { checked: await api('POST', '/idprov/admin/labels/check', { json: body }) };
    } catch (e) {
      if (e instanceof ApiError && e.status === 400) return { error: e.message, field: e.field };
      throw e;
    }
  };

  // The label is described as it is typed or pasted; a scanner types fast,
  // so the server is asked once the typing pauses, and only the answer to
  // the latest text is shown.
  let described = 0;
  let describeTimer = 0;
  const describeLabel = async () => {
    acceptMismatch = false;
    clearTimeout(describeTimer);
    const text = labelInput.value.trim();
    const asked = ++described;
    if (!text) { labelState.replaceChildren(); return; }
    describeTimer = setTimeout(async () => {
      let answer;
      try {
        answer = await check({ label: text });
      } catch (e) {
        if (alive() && asked === described) showError(e, labelState);
        return;
      }
      if (!alive() || asked !== described) return;
      if (answer.error) {
        labelState.replaceChildren(h('span', { class: 'error', text: answer.error }));
        return;
      }
      const label = answer.checked;
      const parts = [`Device ${label.deviceID}. `];
      if (label.caMatches === null) parts.push('The label names no CA.');
      else if (label.caMatches) parts.push('Its CA fingerprint matches this server. ✓');
      else parts.push(h('strong', { class: 'error', text: 'Its CA fingerprint is not this server\'s CA: the device would refuse this server.' }));
      labelState.replaceChildren(...parts);
    }, 150);
  };
  state.cleanups.push(() => clearTimeout(describeTimer));
  labelInput.addEventListener('input', describeLabel);

  /** A strong secret from the server's generator, shown in the field. */
  const generate = async () => {
    try {
      const made = await api('POST', '/idprov/admin/labels/secret');
      if (!alive()) return;
      secretInput.value = made.oobSecret;
      generated = true;
      showSecret.checked = true;
      secretInput.type = 'text';
    } catch (e) {
      showError(e, result);
    }
  };

  const form = h('form', { class: 'stack', id: 'secret-form', novalidate: true },
    h('label', { for: 'label-uri' }, 'Label',
      h('span', { class: 'hint', text: 'Paste the label\'s QR content, or scan it: a handheld scanner types it here and presses Enter.' })),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, labelInput),
      h('button', { type: 'button', id: 'scan', text: 'Scan with camera', on: { click: () => startCamera(camera, labelInput, () => form.requestSubmit()) } })),
    labelState,
    camera,
    h('p', { class: 'muted', text: 'Or by hand:' }),
    h('label', { for: 'secret-device' }, 'Device ID'), idInput,
    h('label', { for: 'secret-value' }, 'Secret',
      h('span', { class: 'hint', text: 'Leave it to Generate for a strong one (26 characters, shown once).' })),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, secretInput),
      h('button', { type: 'button', id: 'generate', text: 'Generate', on: { click: generate } })),
    h('label', { class: 'check', for: 'secret-show' }, showSecret, 'Show the secret'),
    h('label', { class: 'check', for: 'secret-v2-only' }, v2Only, 'For idprov v2 only',
      h('span', { class: 'hint', text: 'SPAKE2+: the server keeps no form of the secret, so a short printed PIN is safe from offline guessing; the device needs an idprov:2 label. A label that says idprov:2 registers this way by itself.' })),
    h('label', { for: 'secret-valid-until' }, 'Valid until',
      h('span', { class: 'hint', text: 'Empty: 3 days from now. The secret works once.' })),
    validInput,
    h('div', {}, h('button', { type: 'submit', class: 'primary', id: 'secret-submit', text: 'Register secret' })));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fromLabel = Boolean(labelInput.value.trim());
    let validUntil;
    try {
      // The browser's local time to UTC: only the browser knows its zone.
      validUntil = rfc3339FromLocal(validInput.value);
    } catch (e) {
      result.replaceChildren(notice('error', 'Not registered', `Valid until: ${e.message}`));
      return;
    }
    let answer;
    try {
      answer = await check(fromLabel
        ? { label: labelInput.value, validUntil, pakeOnly: v2Only.checked }
        : { deviceID: idInput.value.trim(), oobSecret: secretInput.value, validUntil, pakeOnly: v2Only.checked });
    } catch (e) {
      showError(e, result);
      return;
    }
    if (!alive()) return;
    if (answer.error) {
      result.replaceChildren(notice('error', answer.field === 'label' ? 'Not a label' : 'Not registered', answer.error));
      return;
    }
    const checked = answer.checked;
    if (checked.caMatches === false && !acceptMismatch) {
      acceptMismatch = true; // a second press registers it anyway
      const ours = await caFingerprint().catch(() => null);
      result.replaceChildren(notice('warn', 'This label was made for another CA',
        `The label's CA fingerprint is ${checked.caFingerprint}; this server's is ${ours || 'unknown'}. The device will refuse this server. Press Register again to register the secret anyway.`));
      return;
    }
    const { deviceID, oobSecret: secret, pakeOnly } = checked;
    try {
      const added = await api('POST', '/idprov/oobsecret', { json: { deviceID, oobSecret: secret, validUntil, pakeOnly } });
      const warnings = (added && added.warnings) || [];
      const shown = generated || pakeOnly
        ? [h('p', { text: 'The secret, shown only now:' }), h('div', { class: 'secret-once', text: secret }),
          h('p', { class: 'hint', text: 'Label content for this device:' }), h('div', { class: 'secret-once', text: checked.label })]
        : [];
      result.replaceChildren(notice('ok', `Secret registered for ${deviceID}`,
        h('span', {}, 'Valid until ', timeEl(added && added.validUntil), added && added.replaced ? ' (it replaced the previous secret).' : '.'),
        warnings.map((w) => h('p', { text: `Warning: ${w}` })), shown));
      // Ready for the next label.
      form.reset();
      generated = false;
      acceptMismatch = false;
      secretInput.type = 'password';
      labelState.replaceChildren();
      (fromLabel ? labelInput : idInput).focus();
      loadList();
    } catch (e) {
      showError(e, result);
    }
  });

  let after = '';
  const previous = [];
  const selected = state.labelSelection;
  const loadList = async () => {
    let page;
    try {
      page = await api('GET', '/idprov/admin/oob', { query: { after, limit: PAGE_SIZE } });
    } catch (e) {
      if (alive()) showError(e, list);
      return;
    }
    if (!alive()) return;
    const columns = [{ label: 'For labels' }, { label: 'Device', class: 'device' }, { label: 'Registered' }, { label: 'Valid until' }, { label: 'By' }, { label: '' }];
    const rows = page.items.map((s) => [
      h('input', { type: 'checkbox', 'aria-label': `Choose ${s.deviceID} for labels`, checked: selected.has(s.deviceID), on: { change: (e) => { if (e.target.checked) selected.add(s.deviceID); else selected.delete(s.deviceID); updateSelection(); } } }),
      deviceLink(s.deviceID),
      timeEl(s.createdAt),
      timeEl(s.validUntil, { withRelative: true }),
      h('span', { text: s.createdBy || '' }),
      h('button', { type: 'button', class: 'small', text: 'Remove…', dataset: { device: s.deviceID }, on: { click: () => removeSecret(s.deviceID, loadList) } }),
    ]);
    const t = table(columns, rows, 'No secret is registered.');
    t.querySelectorAll('tbody tr').forEach((tr, i) => { if (page.items[i]) tr.dataset.device = page.items[i].deviceID; });
    list.replaceChildren(t);
    setChildren(pager,
      previous.length ? h('button', { type: 'button', class: 'small', text: 'Previous', on: { click: () => { after = previous.pop(); loadList(); } } }) : null,
      page.next ? h('button', { type: 'button', class: 'small', text: 'Next', on: { click: () => { previous.push(after); after = page.next; loadList(); } } }) : null,
    );
  };
  const selection = h('span', { class: 'muted' });
  const labelsButton = link('labels', 'Make labels for the chosen devices', { class: 'button small' });
  const updateSelection = () => {
    selection.textContent = selected.size ? `${selected.size} chosen for labels. ` : '';
    labelsButton.hidden = selected.size === 0;
  };
  updateSelection();

  append(main, [
    h('h1', { text: 'OOB secrets' }),
    h('div', { class: 'split' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-add' }, h('h2', { id: 'h-add', text: 'Register a secret' }), result, form),
      h('section', { class: 'panel', 'aria-labelledby': 'h-ca' },
        h('h2', { id: 'h-ca', text: 'This server\'s CA' }),
        h('p', { text: 'Devices check this fingerprint (a label\'s ca= part, or idprov device --ca-fingerprint) before trusting the server:' }),
        fingerprint,
        h('p', { class: 'muted', text: 'Secrets are stored sealed and never shown again; by default a server restart invalidates them.' }))),
    h('section', { class: 'panel' },
      h('div', { class: 'page-head' }, h('h2', { text: 'Registered secrets' }), h('span', {}, selection, labelsButton)),
      list, pager),
  ]);
  caFingerprint().then((fp) => { fingerprint.textContent = fp; }).catch(() => { fingerprint.textContent = 'unavailable'; });
  loadList();
  labelInput.focus();
}

export async function removeSecret(id, reload) {
  const ok = await ask({
    title: `Remove the secret of ${id}?`,
    body: [h('p', { text: 'The device can no longer prove itself with it; its label stops working.' })],
    ok: 'Remove',
    danger: true,
  });
  if (!ok) return;
  try {
    await api('DELETE', `/idprov/admin/oob/${encodeURIComponent(id)}`);
    toast(`Removed the secret of ${id}.`);
  } catch (e) {
    showError(e);
  }
  reload();
}
