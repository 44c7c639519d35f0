// idprov admin page: Sign-in: the one-time token, or a name and password.

import { append, h, notice } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { state } from '../lib/state.js';
import { updateChrome } from '../lib/session.js';

export function renderSignIn(main, { query }) {
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
