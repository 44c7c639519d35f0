// idprov admin page: Downloads of blobs the page made or received.

import { downloads } from './state.js';
import { h } from './dom.js';

/** The filename of a Content-Disposition header, when it names a plain one. */
export function filenameOf(header) {
  const match = /filename="?([A-Za-z0-9._-]+)"?/.exec(header || '');
  return match ? match[1] : null;
}

/** Saves a blob as a file; returns its object URL (revoked when the page changes). */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  downloads.push(url);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  return url;
}
