// idprov admin page: DOM helpers. Every value reaches the DOM as text through h(); there is
// deliberately no way to pass HTML.

/**
 * Creates an element. `props`: `class`, `text` (textContent), `on` (event
 * name → handler), `dataset`, DOM properties for form state (value,
 * checked, disabled, hidden, required, selected, …) and anything else as an
 * attribute. Children: nodes, strings (always text nodes), arrays, or
 * null/false (skipped). There is deliberately no way to pass HTML.
 */
export function h(tag, props = {}, ...children) {
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

export const PROPERTIES = new Set([
  'value', 'checked', 'disabled', 'hidden', 'required', 'selected', 'multiple',
  'readOnly', 'htmlFor', 'open', 'indeterminate',
]);

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Replaces an element's children; null and false children are skipped. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table whose rows become labelled cards on a narrow screen. */
export function table(columns, rows, emptyText) {
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

export function badge(text, kind = text) {
  return h('span', { class: `badge ${kind}`, text });
}

export function notice(kind, title, ...body) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    title ? h('strong', { text: title }) : null, ...body);
}

export let toastTimer = 0;
/** A short message at the bottom of the screen. */
export function toast(message, kind = '') {
  const el = $('#toast');
  el.textContent = message;
  el.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; }, kind === 'error' ? 7000 : 3500);
}

/** A link inside the page (hash routing). */
export function link(route, text, props = {}) {
  return h('a', { href: `#/${route}`, ...props }, text);
}

export function deviceLink(id) {
  return link(`devices/${encodeURIComponent(id)}`, id, { class: 'mono' });
}
