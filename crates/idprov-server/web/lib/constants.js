// idprov admin page: Constants the screens share (limits of the page itself, names for display).

/** How often the waiting queue refreshes: a device appears while it boots. */
export const QUEUE_REFRESH_MS = 3000;
/** How often the dashboard refreshes. */
export const DASHBOARD_REFRESH_MS = 5000;
/** Rows per page of the paged listings. */
export const PAGE_SIZE = 50;
/** Refused import rows listed on the page; a browser table of 100 000 rows is no help. */
export const MAX_ROWS_SHOWN = 1000;
/** Minimum password length the server accepts: only the form's hint (the server checks). */
export const PASSWORD_MIN = 12;
/** RFC 5280 revocation reasons a device revocation may name. */
export const REVOCATION_REASONS = [
  ['unspecified', 'Unspecified'],
  ['keyCompromise', 'Key compromise (stolen or cloned device)'],
  ['affiliationChanged', 'Affiliation changed'],
  ['superseded', 'Superseded'],
  ['cessationOfOperation', 'Cessation of operation (decommissioned)'],
  ['privilegeWithdrawn', 'Privilege withdrawn'],
];
/** Names of reason codes, for the certificate history. */
export const REASON_NAMES = {
  0: 'unspecified', 1: 'keyCompromise', 2: 'cACompromise', 3: 'affiliationChanged',
  4: 'superseded', 5: 'cessationOfOperation', 6: 'certificateHold',
  9: 'privilegeWithdrawn', 10: 'aACompromise',
};
