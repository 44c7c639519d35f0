// idprov admin page: The signed-in session and the page chrome that depends on it.

import { $ } from './dom.js';
import { ApiError, api, showError } from './api.js';
import { state } from './state.js';

export async function loadSession() {
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
export function sessionEnded() {
  if (!state.session) return;
  state.session = null;
  state.returnTo = location.hash;
  updateChrome();
  location.hash = '#/signin?expired=1';
}

/** Header: navigation and the signed-in name only while signed in. */
export function updateChrome() {
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

export async function signOut() {
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

/**
 * This server's CA fingerprint (PROTOCOL.md §9), as the server states it in
 * the session document: the page computes nothing of the protocol itself.
 */
export async function caFingerprint() {
  if (!state.caFingerprint) await loadSession();
  if (!state.caFingerprint) throw new Error('the server did not say its CA fingerprint');
  return state.caFingerprint;
}
