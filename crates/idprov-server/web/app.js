// idprov admin page: the entry module. It routes between the screens
// (screens/*.js, one module per screen) built with the helpers in lib/*.js,
// in plain JavaScript modules with no framework and no build step; the
// server embeds and serves every file (src/web.rs).
//
// The page keeps no copy of the protocol's rules: device IDs, secrets,
// label URIs and CSV files are parsed and validated by the server (the
// same code the command-line tool uses), and secrets are generated there.
//
// Safety rules these modules keep (the CSP enforces some of them, the code
// the rest):
//  * Every value from the server or from a device (device IDs, claimed IP and
//    MAC, error messages, audit details) reaches the DOM through textContent
//    or attribute setters, via h() in lib/dom.js. Nothing is ever assigned to
//    innerHTML/outerHTML or passed to insertAdjacentHTML, eval or Function.
//  * Every state-changing request carries the session's CSRF token in
//    X-CSRF-Token, and JSON bodies say Content-Type: application/json.
//  * The page never calls alert/confirm/prompt: the browser test treats any
//    native dialog as injected script.

import { $ } from './lib/dom.js';
import { leavePage, parseHash } from './lib/page.js';
import { loadSession, signOut } from './lib/session.js';
import { renderAudit } from './screens/audit.js';
import { renderDashboard } from './screens/dashboard.js';
import { renderDevices } from './screens/devices.js';
import { renderImport } from './screens/import.js';
import { renderLabels } from './screens/labels.js';
import { renderPassword } from './screens/password.js';
import { renderQueue } from './screens/queue.js';
import { renderSecrets } from './screens/secrets.js';
import { renderSignIn } from './screens/signin.js';
import { showError } from './lib/api.js';
import { state } from './lib/state.js';

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
