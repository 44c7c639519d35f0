// idprov admin page: Setting one's own web password.

import { append, h, link, notice, toast } from '../lib/dom.js';
import { PASSWORD_MIN } from '../lib/constants.js';
import { api, showError } from '../lib/api.js';
import { state } from '../lib/state.js';

export function renderPassword(main, { query }) {
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
