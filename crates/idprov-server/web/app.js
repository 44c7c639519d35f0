// idprov admin page: every screen of the web administration, in plain
// JavaScript with no framework and no build step.
//
// Safety rules this file keeps (the CSP enforces some of them, the code the
// rest):
//  * Every value from the server or from a device (device IDs, claimed IP and
//    MAC, error messages, audit details) reaches the DOM through textContent
//    or attribute setters, via h() below. Nothing is ever assigned to
//    innerHTML/outerHTML or passed to insertAdjacentHTML, eval or Function.
//  * Every state-changing request carries the session's CSRF token in
//    X-CSRF-Token, and JSON bodies say Content-Type: application/json.
//  * The page never calls alert/confirm/prompt: the browser test treats any
//    native dialog as injected script.

// ---------------------------------------------------------------- constants

/** How often the waiting queue refreshes: a device appears while it boots. */
const QUEUE_REFRESH_MS = 3000;
/** How often the dashboard refreshes. */
const DASHBOARD_REFRESH_MS = 5000;
/** Rows per page of the paged listings. */
const PAGE_SIZE = 50;
/** Refused import rows listed on the page; a browser table of 100 000 rows is no help. */
const MAX_ROWS_SHOWN = 1000;
/** PROTOCOL.md §7 device ID syntax. */
const DEVICE_ID = /^[A-Za-z0-9_:][A-Za-z0-9._:-]{0,127}$/;
/** Crockford base32: no I, L, O, U, so a secret read off a label is unambiguous. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** PROTOCOL.md §9: generated secrets are 26 Crockford characters (130 bits). */
const SECRET_LENGTH = 26;
/** Secrets shorter than this are accepted with a warning (PROTOCOL.md §9). */
const SHORT_SECRET = 10;
/** Minimum password length the server accepts. */
const PASSWORD_MIN = 12;
/** RFC 5280 revocation reasons a device revocation may name. */
const REVOCATION_REASONS = [
  ['unspecified', 'Unspecified'],
  ['keyCompromise', 'Key compromise (stolen or cloned device)'],
  ['affiliationChanged', 'Affiliation changed'],
  ['superseded', 'Superseded'],
  ['cessationOfOperation', 'Cessation of operation (decommissioned)'],
  ['privilegeWithdrawn', 'Privilege withdrawn'],
];
/** Names of reason codes, for the certificate history. */
const REASON_NAMES = {
  0: 'unspecified', 1: 'keyCompromise', 2: 'cACompromise', 3: 'affiliationChanged',
  4: 'superseded', 5: 'cessationOfOperation', 6: 'certificateHold',
  9: 'privilegeWithdrawn', 10: 'aACompromise',
};
/** Audit events the server writes, offered as suggestions in the filter. */
const AUDIT_EVENTS = [
  'certificate_issued', 'certificate_redelivered', 'certificate_revoked',
  'credential_issued', 'credential_revoked', 'device_removed',
  'lockout_cleared', 'lockout_started', 'request_approved', 'request_rejected',
  'requests_cleared', 'secret_added', 'secret_removed', 'secrets_exported',
  'secrets_imported', 'secrets_purged', 'web_signin', 'web_signin_failed',
  'web_password_set',
];

// ---------------------------------------------------------------- state

const state = {
  /** The signed-in session ({name, via, csrf, expiresAt}), or null. */
  session: null,
  /** Bumped on every page change; async work for an older page is dropped. */
  generation: 0,
  /** Timers and cleanups (camera, polling) of the current page. */
  cleanups: [],
  /** Where to go after signing in again. */
  returnTo: null,
  /** The server's CA fingerprint (base64url), once known. */
  caFingerprint: null,
  /** Device IDs chosen for the label sheet, kept across pages. */
  labelSelection: new Set(),
};

/** Object URLs of downloads and previews, released when the page changes. */
const downloads = [];

// ---------------------------------------------------------------- DOM helpers

/**
 * Creates an element. `props`: `class`, `text` (textContent), `on` (event
 * name → handler), `dataset`, DOM properties for form state (value,
 * checked, disabled, hidden, required, selected, …) and anything else as an
 * attribute. Children: nodes, strings (always text nodes), arrays, or
 * null/false (skipped). There is deliberately no way to pass HTML.
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else if (key.startsWith('on')) throw new Error(`use "on: {…}" for ${key}`);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

const PROPERTIES = new Set([
  'value', 'checked', 'disabled', 'hidden', 'required', 'selected', 'multiple',
  'readOnly', 'htmlFor', 'open', 'indeterminate',
]);

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

const $ = (selector, root = document) => root.querySelector(selector);

/** Replaces an element's children; null and false children are skipped. */
function setChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table whose rows become labelled cards on a narrow screen. */
function table(columns, rows, emptyText) {
  const body = h('tbody');
  if (rows.length === 0) {
    body.append(h('tr', {}, h('td', { class: 'empty', colspan: columns.length, text: emptyText })));
  }
  for (const cells of rows) {
    const tr = h('tr');
    cells.forEach((cell, i) => {
      const col = columns[i];
      tr.append(h('td', { 'data-label': col.label, class: col.class }, cell));
    });
    body.append(tr);
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'responsive' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c.label })))),
      body));
}

function badge(text, kind = text) {
  return h('span', { class: `badge ${kind}`, text });
}

function notice(kind, title, ...body) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    title ? h('strong', { text: title }) : null, ...body);
}

let toastTimer = 0;
/** A short message at the bottom of the screen. */
function toast(message, kind = '') {
  const el = $('#toast');
  el.textContent = message;
  el.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; }, kind === 'error' ? 7000 : 3500);
}

/** A link inside the page (hash routing). */
function link(route, text, props = {}) {
  return h('a', { href: `#/${route}`, ...props }, text);
}

function deviceLink(id) {
  return link(`devices/${encodeURIComponent(id)}`, id, { class: 'mono' });
}

// ---------------------------------------------------------------- time

/** A Date from Unix seconds or an RFC 3339 string; null when absent or unreadable. */
function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "in 3 days", "5 minutes ago". */
function relative(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400],
    ['hour', 3600], ['minute', 60], ['second', 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return relativeFormat.format(Math.round(seconds / size), unit);
    }
  }
  return '';
}

/** A <time> in the browser's time zone, with the exact UTC time as its tooltip. */
function timeEl(value, { withRelative = false } = {}) {
  const d = toDate(value);
  if (!d) return h('span', { class: 'muted', text: value ? String(value) : '—' });
  return h('time', { datetime: d.toISOString(), title: d.toISOString() },
    d.toLocaleString(),
    withRelative ? h('span', { class: 'sub', text: relative(d) }) : null);
}

/** RFC 3339 (UTC, whole seconds) of a datetime-local input's value. */
function rfc3339FromLocal(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error('the date is not readable');
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * Calls the server. `json` sends a JSON body; `body` + `contentType` send
 * anything else; `raw` returns the Response (downloads). A 401 on an admin
 * call means the session ended: the page goes back to sign-in.
 */
async function api(method, path, { json, body, contentType, query, raw = false, signin = false, background = false } = {}) {
  const headers = {};
  // Automatic refreshes are not a person using the page: the server does not
  // count them as activity, so an unattended page still signs out when idle.
  if (background) headers['X-Background-Refresh'] = '1';
  if (method !== 'GET') {
    // Cookie sessions need the token; a certificate session has none and needs none.
    if (state.session && state.session.csrf) headers['X-CSRF-Token'] = state.session.csrf;
  }
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (contentType) {
    headers['Content-Type'] = contentType;
  }
  if (!raw) headers.Accept = 'application/json';
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '' && v !== false) params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, body, credentials: 'same-origin', cache: 'no-store', redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, 'The server cannot be reached.');
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      if (problem && typeof problem.error === 'string') message = problem.error;
    } catch { /* not JSON: keep the status line */ }
    const error = new ApiError(response.status, message, response.headers.get('Retry-After'));
    if (response.status === 401 && !signin) sessionEnded();
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

/** Shows an API failure where the user is looking. */
function showError(error, where) {
  if (error instanceof ApiError && error.status === 401) return; // already back at sign-in
  const message = error instanceof ApiError ? error.message : String(error.message || error);
  if (where) where.replaceChildren(notice('error', 'The server refused', message));
  else toast(message, 'error');
}

// ---------------------------------------------------------------- session

async function loadSession() {
  try {
    state.session = await api('GET', '/admin/api/session', { signin: true });
  } catch (e) {
    state.session = null;
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
  }
  if (state.session && state.session.caFingerprint) state.caFingerprint = state.session.caFingerprint;
  updateChrome();
}

/** The session expired or was signed out elsewhere: back to sign-in, then back here. */
function sessionEnded() {
  if (!state.session) return;
  state.session = null;
  state.returnTo = location.hash;
  updateChrome();
  location.hash = '#/signin?expired=1';
}

/** Header: navigation and the signed-in name only while signed in. */
function updateChrome() {
  const signedIn = Boolean(state.session);
  $('#nav').hidden = !signedIn;
  $('#nav-toggle').hidden = !signedIn;
  $('#who').hidden = !signedIn;
  if (signedIn) {
    const via = state.session.via === 'certificate' ? ' (client certificate)' : '';
    $('#who-name').textContent = `${state.session.name}${via}`;
    // A certificate sign-in lasts as long as the certificate is presented.
    $('#signout').hidden = state.session.via === 'certificate';
    $('#password-link').hidden = state.session.via === 'certificate';
  }
}

async function signOut() {
  try {
    await api('POST', '/admin/api/signout', { signin: true });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) showError(e);
  }
  state.session = null;
  state.returnTo = null;
  updateChrome();
  location.hash = '#/signin';
}

// ---------------------------------------------------------------- CA fingerprint

function base64ToBytes(b64) {
  const bin = atob(b64.replace(/\s+/g, ''));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function bytesToBase64Url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The CA fingerprint of PROTOCOL.md §9: SHA-256 of the issuing CA's DER (the
 * first certificate of the directory's chain), unpadded base64url.
 */
async function caFingerprint() {
  if (state.caFingerprint) return state.caFingerprint;
  const directory = await api('GET', '/idprov/directory');
  let pem = directory.caCert || '';
  if (!pem.includes('-----BEGIN')) pem = new TextDecoder().decode(base64ToBytes(pem));
  const match = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!match) throw new Error('the directory carries no CA certificate');
  const digest = await crypto.subtle.digest('SHA-256', base64ToBytes(match[1]));
  state.caFingerprint = bytesToBase64Url(new Uint8Array(digest));
  return state.caFingerprint;
}

/** A fingerprint in canonical form: base64url as is, colon-separated hex converted. */
function normalizeFingerprint(text) {
  const t = text.trim();
  if (/^[A-Za-z0-9_-]{43}$/.test(t)) return t;
  if (/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(t)) {
    return bytesToBase64Url(Uint8Array.from(t.split(':'), (x) => parseInt(x, 16)));
  }
  return null;
}

// ---------------------------------------------------------------- secrets and labels

/** 26 Crockford base32 characters from the browser's CSPRNG (130 bits). */
function generateSecret() {
  const bytes = new Uint8Array(SECRET_LENGTH);
  crypto.getRandomValues(bytes);
  // 256 is a multiple of 32, so the low five bits of a byte are uniform.
  return Array.from(bytes, (b) => CROCKFORD[b & 31]).join('');
}

/** Why a secret would be refused, or null (PROTOCOL.md §4). */
function secretProblem(secret) {
  if (secret === '') return 'the secret is empty';
  if (new TextEncoder().encode(secret).length > 256) return 'the secret is longer than 256 bytes';
  if (/[\u0000-\u001f\u007f]/.test(secret)) return 'the secret contains a control character';
  return null;
}

function deviceIdProblem(id) {
  if (id === '') return 'the device ID is empty';
  if (!DEVICE_ID.test(id)) {
    return 'a device ID is 1–128 characters of A–Z a–z 0–9 . _ : - and does not start with . or -';
  }
  return null;
}

/**
 * Parses a label URI `idprov:1?id=…&s=…&ca=…` as the server does
 * (PROTOCOL.md §9): percent-decoding only ("+" stays "+"), unknown
 * parameters ignored, repeated ones refused. Errors never repeat the secret.
 */
function parseLabel(text) {
  const uri = text.trim();
  if (!uri.startsWith('idprov:1?')) throw new Error('a label starts with "idprov:1?"');
  const found = {};
  for (const pair of uri.slice('idprov:1?'.length).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new Error(`label parameter "${pair.slice(0, 16)}" is malformed`);
    const key = pair.slice(0, eq);
    if (!['id', 's', 'ca'].includes(key)) continue;
    if (key in found) throw new Error(`label parameter "${key}" is repeated`);
    found[key] = pair.slice(eq + 1);
  }
  const decode = (name) => {
    try {
      return decodeURIComponent(found[name]);
    } catch {
      throw new Error(`label parameter "${name}" is not valid percent-encoded UTF-8`);
    }
  };
  if (found.id === undefined) throw new Error('the label has no "id" parameter');
  if (found.s === undefined) throw new Error('the label has no "s" parameter');
  const deviceID = decode('id');
  const secret = decode('s');
  const idProblem = deviceIdProblem(deviceID);
  if (idProblem) throw new Error(`label device ID: ${idProblem}`);
  const sProblem = secretProblem(secret);
  if (sProblem) throw new Error(`label secret: ${sProblem}`);
  let ca = null;
  if (found.ca) {
    ca = normalizeFingerprint(decode('ca'));
    if (!ca) throw new Error('the label\'s CA fingerprint is not a SHA-256 fingerprint');
  }
  return { deviceID, secret, ca };
}

/** The label URI for a device and secret (what the QR code holds). */
function labelUri(deviceID, secret, ca) {
  // encodeURIComponent leaves !'()* alone; the server's encoder escapes
  // them, and both decode either way, so only unreserved characters stay.
  const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `idprov:1?id=${enc(deviceID)}&s=${enc(secret)}${ca ? `&ca=${ca}` : ''}`;
}

// ---------------------------------------------------------------- CSV

/**
 * Parses bulk-registration CSV the way the command-line tool does: header
 * `deviceID,secret[,validUntil]` on line 1; quoted fields may hold commas,
 * quotes ("") and line breaks; blank lines are skipped. Each row keeps the
 * physical line where it starts and its 0-based index, so problems are
 * reported where a person looks for them.
 */
function parseCsv(text) {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a spreadsheet's byte-order mark
  const records = [];
  let field = '';
  let fields = [];
  let line = 1;
  let startLine = 1;
  let quoted = false;
  let fieldStarted = false;
  let problem = null;
  const endRecord = () => {
    fields.push(field);
    const blank = fields.length === 1 && fields[0] === '' && !fieldStarted;
    if (!blank) records.push({ line: startLine, fields, problem });
    fields = [];
    field = '';
    fieldStarted = false;
    problem = null;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"') {
      // A quote opens a quoted field only at its start; elsewhere it is a
      // character of the value, as the command-line tool's reader takes it.
      if (field === '') quoted = true;
      else field += c;
      fieldStarted = true;
    } else if (c === ',') {
      fields.push(field);
      field = '';
      fieldStarted = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      startLine = line;
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  if (quoted) problem = 'a quoted field is not closed';
  if (field !== '' || fields.length > 0 || fieldStarted) endRecord();

  const header = records.shift();
  const names = header ? header.fields.map((f) => f.trim()).join(',') : '';
  if (names !== 'deviceID,secret' && names !== 'deviceID,secret,validUntil') {
    throw new Error(`line 1: the CSV header must be deviceID,secret[,validUntil] (found "${names.slice(0, 80)}")`);
  }
  const withValidUntil = names.endsWith('validUntil');
  const want = withValidUntil ? 3 : 2;
  const rows = [];
  const rejected = [];
  // A cell an export marked as text for a spreadsheet ("'=…", "'+…", "''…")
  // stands for the value without its first apostrophe, as the
  // command-line tool reads it.
  const unescape = (cell) => (/^'['=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell);
  records.forEach((rec, index) => {
    const [deviceID = '', secret = '', validUntil = ''] = rec.fields.map(unescape);
    let error = rec.problem ? `not a CSV row: ${rec.problem}` : null;
    if (!error && rec.fields.length !== want && !(withValidUntil && rec.fields.length === 2)) {
      error = `expected ${want} columns, found ${rec.fields.length}`;
    }
    if (!error && secret === '') error = 'no secret (to have secrets generated and printed, use Labels)';
    if (error) rejected.push({ index, line: rec.line, deviceID, error, local: true });
    else rows.push({ deviceID, oobSecret: secret, validUntil, line: rec.line, index });
  });
  return { rows, rejected, total: records.length };
}

/** NDJSON for the import route; line and index let the server report rows by line. */
function toNdjson(rows) {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

// ---------------------------------------------------------------- routing

/** `#/devices/abc?x=1` → {name: 'devices', rest: ['abc'], query}. */
function parseHash() {
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
function setQuery(params) {
  const { name, rest } = parseHash();
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) qs.set(k, String(v));
  const path = [name, ...rest.map(encodeURIComponent)].join('/');
  const s = qs.toString();
  history.replaceState(null, '', `#/${path}${s ? `?${s}` : ''}`);
}

const PAGES = {
  signin: { title: 'Sign in', render: renderSignIn, public: true },
  password: { title: 'Set a password', render: renderPassword },
  dashboard: { title: 'Dashboard', render: renderDashboard },
  queue: { title: 'Waiting queue', render: renderQueue },
  devices: { title: 'Devices', render: renderDevices },
  secrets: { title: 'Secrets', render: renderSecrets },
  import: { title: 'Bulk import', render: renderImport },
  labels: { title: 'Labels', render: renderLabels },
  audit: { title: 'Audit log', render: renderAudit },
};

/** Stops the previous page's timers and camera. */
function leavePage() {
  state.generation++;
  for (const url of downloads.splice(0)) URL.revokeObjectURL(url);
  for (const cleanup of state.cleanups.splice(0)) {
    try { cleanup(); } catch { /* already stopped */ }
  }
}

/** The current page's generation: async work checks it before touching the DOM. */
function current() {
  const generation = state.generation;
  return () => generation === state.generation;
}

/**
 * Runs `fn` now and again `ms` after each run ends (never overlapping),
 * while the page is shown; skipped while the tab is hidden.
 */
function poll(fn, ms) {
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

async function route() {
  leavePage();
  const { name } = parseHash();
  const page = PAGES[name];
  if (!page) { location.hash = '#/dashboard'; return; }
  if (!page.public && !state.session) {
    state.returnTo = location.hash;
    location.hash = '#/signin';
    return;
  }
  if (name === 'signin' && state.session) { location.hash = '#/dashboard'; return; }
  document.title = `${page.title} · idprov`;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('#nav').classList.remove('open');
  $('#nav-toggle').setAttribute('aria-expanded', 'false');
  const main = $('#main');
  main.replaceChildren();
  try {
    await page.render(main, parseHash());
  } catch (e) {
    showError(e, main);
  }
}

// ---------------------------------------------------------------- modal

/**
 * A modal dialog (never the browser's confirm()). Resolves true when the
 * user presses OK, false on Cancel or Escape. Inputs in `body` stay readable
 * by the caller afterwards.
 */
function ask({ title, body = [], ok = 'OK', danger = false }) {
  const dialog = $('#modal');
  $('#modal-title').textContent = title;
  $('#modal-body').replaceChildren(...body.flat().filter(Boolean));
  const okButton = $('#modal-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : 'primary';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    const cancel = $('#modal-cancel');
    const onCancel = () => dialog.close('cancel');
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', () => {
      cancel.removeEventListener('click', onCancel);
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
    const firstInput = $('#modal-body input, #modal-body select, #modal-body textarea');
    (firstInput || okButton).focus();
  });
}

// ---------------------------------------------------------------- sign-in

function renderSignIn(main, { query }) {
  const message = h('div');
  if (query.get('expired')) {
    message.append(notice('warn', 'Your session ended', 'Sign in again to continue.'));
  }

  const tokenInput = h('input', {
    type: 'password', id: 'signin-token', name: 'token', required: true,
    autocomplete: 'one-time-code', spellcheck: 'false',
  });
  const tokenForm = h('form', { class: 'stack', id: 'signin-token-form' },
    h('label', { for: 'signin-token' }, 'One-time sign-in token',
      h('span', { class: 'hint', text: 'Written by the first start of idprov serve to signin-token in its data directory (and printed when it runs in a terminal). It works once, within 24 hours.' })),
    tokenInput,
    h('div', {}, h('button', { type: 'submit', class: 'primary', text: 'Sign in with the token' })));

  const nameInput = h('input', { type: 'text', id: 'signin-name', name: 'username', value: 'admin', required: true, autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const passwordInput = h('input', { type: 'password', id: 'signin-password', name: 'password', required: true, autocomplete: 'current-password' });
  const passwordForm = h('form', { class: 'stack', id: 'signin-password-form' },
    h('label', { for: 'signin-name' }, 'Name'), nameInput,
    h('label', { for: 'signin-password' }, 'Password',
      h('span', { class: 'hint', text: 'Set on this page after the first sign-in, or with idprov admin password.' })),
    passwordInput,
    h('div', {}, h('button', { type: 'submit', class: 'primary', text: 'Sign in' })));

  const submit = async (event, body, viaToken) => {
    event.preventDefault();
    const button = event.target.querySelector('button[type=submit]');
    button.disabled = true;
    message.replaceChildren();
    try {
      state.session = await api('POST', '/admin/api/signin', { json: body, signin: true });
      if (state.session.caFingerprint) state.caFingerprint = state.session.caFingerprint;
      updateChrome();
      const next = viaToken ? '#/password?first=1' : (state.returnTo || '#/dashboard');
      state.returnTo = viaToken ? state.returnTo : null;
      location.hash = next;
    } catch (e) {
      let text = e.message;
      if (e.status === 401) text = viaToken ? 'That token is not valid (it works once, within 24 hours).' : 'Wrong name or password.';
      if (e.status === 429) text = `Too many failed sign-ins from this address. Try again in ${e.retryAfter || 'a few'} seconds.`;
      message.replaceChildren(notice('error', 'Not signed in', text));
    } finally {
      button.disabled = false;
    }
  };
  tokenForm.addEventListener('submit', (e) => submit(e, { token: tokenInput.value.trim() }, true));
  passwordForm.addEventListener('submit', (e) => submit(e, { name: nameInput.value.trim(), password: passwordInput.value }, false));

  append(main, [
    h('h1', { text: 'Sign in to idprov' }),
    message,
    h('div', { class: 'split' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-password' },
        h('h2', { id: 'h-password', text: 'Name and password' }), passwordForm),
      h('section', { class: 'panel', 'aria-labelledby': 'h-token' },
        h('h2', { id: 'h-token', text: 'First sign-in' }), tokenForm)),
    h('p', { class: 'muted', text: 'A browser with an administrator certificate installed (idprov admin create NAME --p12 FILE) is signed in without either.' }),
  ]);
  (query.get('expired') ? passwordInput : nameInput).focus();
}

function renderPassword(main, { query }) {
  const first = query.get('first');
  const result = h('div');
  const password = h('input', { type: 'password', id: 'new-password', required: true, minlength: PASSWORD_MIN, autocomplete: 'new-password' });
  const repeat = h('input', { type: 'password', id: 'new-password-repeat', required: true, minlength: PASSWORD_MIN, autocomplete: 'new-password' });
  const form = h('form', { class: 'stack', id: 'password-form' },
    // For password managers: the account this password belongs to.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: state.session.name, readOnly: true, hidden: true }),
    h('label', { for: 'new-password' }, 'New password',
      h('span', { class: 'hint', text: `At least ${PASSWORD_MIN} characters. A passphrase of several words is easiest to type.` })),
    password,
    h('label', { for: 'new-password-repeat' }, 'The same again'), repeat,
    h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'primary', text: 'Set password' }),
      link('dashboard', first ? 'Not now' : 'Cancel', { class: 'button' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (password.value !== repeat.value) {
      result.replaceChildren(notice('error', 'The two passwords differ'));
      return;
    }
    try {
      await api('POST', '/admin/api/password', { json: { password: password.value } });
      password.value = '';
      repeat.value = '';
      toast('Password set.');
      location.hash = state.returnTo || '#/dashboard';
      state.returnTo = null;
    } catch (e) {
      showError(e, result);
    }
  });
  append(main, [
    h('h1', { text: first ? 'Signed in. Set a password?' : 'Set a password' }),
    first ? h('p', { text: `The sign-in token worked once and is now spent. To sign in again later as "${state.session.name}", set a password now (or later with idprov admin password).` }) : null,
    result,
    h('section', { class: 'panel' }, form),
  ]);
  password.focus();
}

// ---------------------------------------------------------------- dashboard

function renderDashboard(main) {
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

// ---------------------------------------------------------------- waiting queue

function renderQueue(main) {
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

function queueTable(items, refresh) {
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
      h('span', { class: 'mono', text: r.source ?? '' }),
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

function shortFingerprint(fp) {
  if (!fp) return '';
  return fp.length > 16 ? `${fp.slice(0, 16)}…` : fp;
}

/** Approve, reject (with a reason) or clear one waiting request. */
async function decide(action, request, refresh) {
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

// ---------------------------------------------------------------- devices

function renderDevices(main, { rest, query }) {
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

function devicesTable(items) {
  const columns = [
    { label: 'Device', class: 'device' }, { label: 'Status' }, { label: 'Valid until' }, { label: 'Last issued' },
    { label: 'Certificates', class: 'num' }, { label: 'Secret' }, { label: 'Waiting', class: 'num' }, { label: 'Since' },
  ];
  const rows = items.map((d) => [
    deviceLink(d.deviceID),
    badge(d.status),
    d.validUntil ? timeEl(d.validUntil, { withRelative: true }) : h('span', { class: 'muted', text: '—' }),
    timeEl(d.lastIssuedAt),
    `${d.certificates ?? 0}${d.revoked ? ` (${d.revoked} revoked)` : ''}`,
    d.liveSecret ? 'registered' : h('span', { class: 'muted', text: 'none' }),
    String(d.waiting ?? 0),
    timeEl(d.createdAt),
  ]);
  const t = table(columns, rows, 'No device matches.');
  t.querySelectorAll('tbody tr').forEach((tr, i) => { if (items[i]) tr.dataset.device = items[i].deviceID; });
  return t;
}

async function renderDevice(main, id) {
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

function certificateTable(certs) {
  const columns = [
    { label: 'Serial' }, { label: 'Issued' }, { label: 'How' }, { label: 'Key' },
    { label: 'Valid' }, { label: 'Revoked' }, { label: '' },
  ];
  const rows = certs.map((c) => [
    h('code', { text: c.serial }),
    timeEl(c.issuedAt),
    h('span', {}, h('span', { text: c.issueKind || '' }), h('span', { class: 'sub', text: c.authorizedBy ? `by ${c.authorizedBy}` : '' })),
    h('span', {}, h('span', { text: c.keyType || '' }), h('code', { class: 'sub', title: c.keyFingerprint, text: shortFingerprint(c.keyFingerprint) })),
    h('span', {}, timeEl(c.notBefore), h('span', { class: 'sub' }, 'to ', timeEl(c.notAfter))),
    c.revokedAt
      ? h('span', {}, badge('revoked'), h('span', { class: 'sub' }, timeEl(c.revokedAt), ` · ${REASON_NAMES[c.revocationReason] ?? c.revocationReason ?? ''}`))
      : h('span', { class: 'muted', text: 'no' }),
    c.pem ? h('button', { type: 'button', class: 'small', text: 'PEM', title: 'Download this certificate', on: { click: () => download(new Blob([c.pem], { type: 'application/x-pem-file' }), `${c.serial}.pem`) } }) : null,
  ]);
  return table(columns, rows, 'No certificate has been issued to this device.');
}

async function revokeDevice(id, valid, result, reload) {
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

async function removeDevice(id, result) {
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

async function unlockDevice(id, result) {
  try {
    const r = await api('POST', `/idprov/admin/devices/${encodeURIComponent(id)}/unlock`);
    result.replaceChildren(notice('ok', 'Lockouts cleared', `${r.cleared} counter${r.cleared === 1 ? '' : 's'} cleared.`));
  } catch (e) {
    showError(e, result);
  }
}

// ---------------------------------------------------------------- secrets

function renderSecrets(main) {
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
  showSecret.addEventListener('change', () => { secretInput.type = showSecret.checked ? 'text' : 'password'; });
  secretInput.addEventListener('input', () => { generated = false; });

  const camera = h('div', { class: 'camera', hidden: true, id: 'camera' });

  const describeLabel = async () => {
    acceptMismatch = false;
    const text = labelInput.value.trim();
    if (!text) { labelState.replaceChildren(); return; }
    let label;
    try {
      label = parseLabel(text);
    } catch (e) {
      labelState.replaceChildren(h('span', { class: 'error', text: e.message }));
      return;
    }
    const parts = [`Device ${label.deviceID}. `];
    if (!label.ca) parts.push('The label names no CA.');
    else {
      const ours = await caFingerprint().catch(() => null);
      if (ours && ours === label.ca) parts.push('Its CA fingerprint matches this server. ✓');
      else parts.push(h('strong', { class: 'error', text: 'Its CA fingerprint is not this server\'s CA: the device would refuse this server.' }));
    }
    labelState.replaceChildren(...parts);
  };
  labelInput.addEventListener('input', describeLabel);

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
      h('button', { type: 'button', id: 'generate', text: 'Generate', on: { click: () => { secretInput.value = generateSecret(); generated = true; showSecret.checked = true; secretInput.type = 'text'; } } })),
    h('label', { class: 'check', for: 'secret-show' }, showSecret, 'Show the secret'),
    h('label', { for: 'secret-valid-until' }, 'Valid until',
      h('span', { class: 'hint', text: 'Empty: 3 days from now. The secret works once.' })),
    validInput,
    h('div', {}, h('button', { type: 'submit', class: 'primary', id: 'secret-submit', text: 'Register secret' })));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let deviceID = idInput.value.trim();
    let secret = secretInput.value;
    let fromLabel = false;
    if (labelInput.value.trim()) {
      let label;
      try {
        label = parseLabel(labelInput.value);
      } catch (e) {
        result.replaceChildren(notice('error', 'Not a label', e.message));
        return;
      }
      if (label.ca && !acceptMismatch) {
        const ours = await caFingerprint().catch(() => null);
        if (ours !== label.ca) {
          acceptMismatch = true; // a second press registers it anyway
          result.replaceChildren(notice('warn', 'This label was made for another CA',
            `The label's CA fingerprint is ${label.ca}; this server's is ${ours || 'unknown'}. The device will refuse this server. Press Register again to register the secret anyway.`));
          return;
        }
      }
      ({ deviceID, secret } = label);
      fromLabel = true;
    }
    const problem = deviceIdProblem(deviceID) || secretProblem(secret);
    if (problem) { result.replaceChildren(notice('error', 'Not registered', problem)); return; }
    let validUntil;
    try {
      validUntil = rfc3339FromLocal(validInput.value);
    } catch (e) {
      result.replaceChildren(notice('error', 'Not registered', `Valid until: ${e.message}`));
      return;
    }
    try {
      const added = await api('POST', '/idprov/oobsecret', { json: { deviceID, oobSecret: secret, validUntil } });
      const warnings = (added && added.warnings) || [];
      if (secret.length < SHORT_SECRET && !warnings.length) warnings.push('A secret this short can be guessed offline from a captured exchange.');
      const shown = generated
        ? [h('p', { text: 'The secret, shown only now:' }), h('div', { class: 'secret-once', text: secret }),
          h('p', { class: 'hint', text: 'Label content for this device:' }), h('div', { class: 'secret-once', text: labelUri(deviceID, secret, await caFingerprint().catch(() => null)) })]
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

async function removeSecret(id, reload) {
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

// ---------------------------------------------------------------- camera scan

/** Loads the vendored QR decoder (256 kB) only when a camera scan starts. */
function loadDecoder() {
  if (window.jsQR) return Promise.resolve(window.jsQR);
  return new Promise((resolve, reject) => {
    const script = h('script', { src: '/admin/assets/jsqr.js' });
    script.addEventListener('load', () => (window.jsQR ? resolve(window.jsQR) : reject(new Error('the QR decoder did not load'))));
    script.addEventListener('error', () => reject(new Error('the QR decoder did not load')));
    document.head.append(script);
  });
}

/**
 * Shows the camera in `box`, decodes frames until a label QR code appears,
 * puts its content in `target` and calls `found`. Frames are drawn into a
 * canvas and decoded in the page: nothing leaves the browser.
 */
async function startCamera(box, target, found) {
  if (!box.hidden) return; // already scanning
  const status = h('p', { class: 'hint', 'aria-live': 'polite', text: 'Starting the camera…' });
  const video = h('video', { playsinline: true, muted: true, autoplay: true });
  const stopButton = h('button', { type: 'button', text: 'Stop camera' });
  box.replaceChildren(video, status, stopButton);
  box.hidden = false;
  let stream = null;
  let frame = 0;
  const stop = () => {
    cancelAnimationFrame(frame);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    box.hidden = true;
    box.replaceChildren();
  };
  stopButton.addEventListener('click', stop);
  state.cleanups.push(stop);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    status.textContent = 'This browser offers no camera to this page (a camera needs HTTPS and permission). Use a handheld scanner or paste the label instead.';
    return;
  }
  let decode;
  try {
    [decode, stream] = await Promise.all([
      loadDecoder(),
      navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false }),
    ]);
  } catch (e) {
    status.textContent = `No camera: ${e.message || e.name}.`;
    return;
  }
  if (box.hidden) { stream.getTracks().forEach((t) => t.stop()); return; } // stopped meanwhile
  video.srcObject = stream;
  await video.play().catch(() => {});
  status.textContent = 'Hold the label\'s QR code in front of the camera.';
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  let lastDecode = 0;
  const scan = (now) => {
    if (!stream) return;
    frame = requestAnimationFrame(scan);
    // About seven decodes a second is plenty and keeps a phone cool.
    if (now - lastDecode < 150 || video.readyState < 2 || !video.videoWidth) return;
    lastDecode = now;
    // Decode at most 640 px wide: QR codes on labels stay readable, work stays small.
    const scale = Math.min(1, 640 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const code = decode(image.data, image.width, image.height, { inversionAttempts: 'attemptBoth' });
    if (!code || !code.data) return;
    if (!code.data.startsWith('idprov:')) {
      status.textContent = 'That QR code is not an idprov label.';
      return;
    }
    stop();
    target.value = code.data;
    target.dispatchEvent(new Event('input'));
    found();
  };
  frame = requestAnimationFrame(scan);
}

// ---------------------------------------------------------------- bulk import

function renderImport(main) {
  const file = h('input', { type: 'file', id: 'import-file', accept: '.csv,text/csv' });
  const replace = h('input', { type: 'checkbox', id: 'import-replace', checked: true });
  const output = h('div', { id: 'import-result', 'aria-live': 'polite' });
  let prepared = null; // {name, ndjson, parsed}

  const check = async () => {
    output.replaceChildren();
    prepared = null;
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    let parsed;
    try {
      parsed = parseCsv(await chosen.text());
    } catch (e) {
      output.replaceChildren(notice('error', `${chosen.name} cannot be imported`, e.message));
      return;
    }
    prepared = { name: chosen.name, ndjson: toNdjson(parsed.rows), parsed };
    output.replaceChildren(notice('', `Checking ${parsed.total} rows of ${chosen.name}…`));
    await send(true);
  };

  /** Posts the rows, as a dry run or for real, and shows the result. */
  const send = async (dryRun) => {
    const { parsed, name, ndjson } = prepared;
    let result = { accepted: 0, replaced: 0, rejected: [] };
    if (parsed.rows.length > 0) {
      try {
        result = await api('POST', '/idprov/admin/oob/import', {
          query: { dryRun: dryRun ? 'true' : undefined, replace: replace.checked ? undefined : 'false' },
          body: ndjson,
          contentType: 'application/x-ndjson',
        });
      } catch (e) {
        showError(e, output);
        return;
      }
    }
    const rejected = [...parsed.rejected, ...(result.rejected || [])]
      .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.index ?? 0) - (b.index ?? 0));
    const summary = dryRun
      ? `${result.accepted} of ${parsed.total} rows would be registered (${result.replaced} replacing a secret); ${rejected.length} ${rejected.length === 1 ? 'has a problem' : 'have problems'}. Nothing has changed yet.`
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

// ---------------------------------------------------------------- labels

function renderLabels(main) {
  const alive = current();
  const ids = h('textarea', { id: 'label-ids', rows: 6, spellcheck: 'false', placeholder: 'sensor-1\nsensor-2' });
  ids.value = [...state.labelSelection].join('\n');
  const format = h('select', { id: 'label-format' },
    h('option', { value: 'svg', text: 'SVG (prints sharp at any size)' }),
    h('option', { value: 'png', text: 'PNG' }));
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
    const bad = list.filter((id) => deviceIdProblem(id));
    if (list.length === 0) { output.replaceChildren(notice('error', 'No device chosen')); return; }
    if (bad.length) { output.replaceChildren(notice('error', 'Not device IDs', bad.slice(0, 10).join(', '))); return; }
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
      const response = await api('POST', '/idprov/admin/labels', { json: { deviceIDs: list, format: format.value }, raw: true });
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
        h('div', {}, h('button', { type: 'button', class: 'danger', id: 'label-generate', text: 'Generate new secrets and download sheet', on: { click: generate } }))),
      h('section', { class: 'panel stack' },
        h('h2', { text: 'Pick devices' }),
        h('div', { class: 'row' }, h('div', { class: 'grow' }, search), statusFilter),
        found)),
    output,
  ]);
  loadPicker();
}

/** The filename of a Content-Disposition header, when it names a plain one. */
function filenameOf(header) {
  const match = /filename="?([A-Za-z0-9._-]+)"?/.exec(header || '');
  return match ? match[1] : null;
}

/** Saves a blob as a file; returns its object URL (revoked when the page changes). */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  downloads.push(url);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  return url;
}

// ---------------------------------------------------------------- audit log

function auditTable(entries) {
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
function detailValue(key, value) {
  if (typeof value === 'number' && value > 1e9 && /(At|Until|notAfter|notBefore)$/.test(key)) {
    return new Date(value * 1000).toLocaleString();
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** An audit entry's detail object as compact text (never as markup). */
function detailText(detail) {
  if (!detail || (typeof detail === 'object' && Object.keys(detail).length === 0)) return h('span', { class: 'muted', text: '' });
  const text = Object.entries(detail).map(([k, v]) => `${k}: ${detailValue(k, v)}`).join(', ');
  return h('code', { text });
}

function renderAudit(main, { query }) {
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
        h('datalist', { id: 'audit-events' }, AUDIT_EVENTS.map((v) => h('option', { value: v }))),
        h('button', { type: 'submit', text: 'Filter' }))),
    h('section', { class: 'panel' }, list, pager),
  ]);
  loadStatus().then(load);
}

// ---------------------------------------------------------------- start

function start() {
  $('#signout').addEventListener('click', signOut);
  $('#nav-toggle').addEventListener('click', () => {
    const open = $('#nav').classList.toggle('open');
    $('#nav-toggle').setAttribute('aria-expanded', String(open));
  });
  window.addEventListener('hashchange', route);
  loadSession()
    .catch((e) => showError(e, $('#main')))
    .finally(() => {
      if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/dashboard');
      route();
    });
}

start();
