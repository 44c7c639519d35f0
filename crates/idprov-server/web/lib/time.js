// idprov admin page: Dates and times, shown in the browser's time zone.

import { h } from './dom.js';

/** A Date from Unix seconds or an RFC 3339 string; null when absent or unreadable. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "in 3 days", "5 minutes ago". */
export function relative(date) {
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
export function timeEl(value, { withRelative = false } = {}) {
  const d = toDate(value);
  if (!d) return h('span', { class: 'muted', text: value ? String(value) : '—' });
  return h('time', { datetime: d.toISOString(), title: d.toISOString() },
    d.toLocaleString(),
    withRelative ? h('span', { class: 'sub', text: relative(d) }) : null);
}

/** RFC 3339 (UTC, whole seconds) of a datetime-local input's value. */
export function rfc3339FromLocal(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error('the date is not readable');
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
