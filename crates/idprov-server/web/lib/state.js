// idprov admin page: The page's state, shared by the screens.

export const state = {
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
export const downloads = [];
