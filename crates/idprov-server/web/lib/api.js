// idprov admin page: The API client: every call to the server goes through api().

import { notice, toast } from './dom.js';
import { state } from './state.js';
import { sessionEnded } from './session.js';

export class ApiError extends Error {
  constructor(status, message, retryAfter, field = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    /** The invalid input the server named (deviceID, label, …), if any. */
    this.field = field;
  }
}

/**
 * Calls the server. `json` sends a JSON body; `body` + `contentType` send
 * anything else; `raw` returns the Response (downloads). A 401 on an admin
 * call means the session ended: the page goes back to sign-in.
 */
export async function api(method, path, { json, body, contentType, query, raw = false, signin = false, background = false } = {}) {
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
    let field = null;
    try {
      const problem = await response.json();
      if (problem && typeof problem.error === 'string') message = problem.error;
      if (problem && typeof problem.field === 'string') field = problem.field;
    } catch { /* not JSON: keep the status line */ }
    const error = new ApiError(response.status, message, response.headers.get('Retry-After'), field);
    if (response.status === 401 && !signin) sessionEnded();
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

/** Shows an API failure where the user is looking. */
export function showError(error, where) {
  if (error instanceof ApiError && error.status === 401) return; // already back at sign-in
  const message = error instanceof ApiError ? error.message : String(error.message || error);
  if (where) where.replaceChildren(notice('error', 'The server refused', message));
  else toast(message, 'error');
}
