// dom.js: building the DOM without HTML strings. Every text goes in through textContent
// (or a text node), never innerHTML, so a value from the server is always shown as text.

// h(tag, props, ...children): an element. props: class, text, attributes (aria-*, data-*,
// type, href...), on* handlers (onclick...), dataset; children: nodes, strings, arrays, null.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden' || k === 'multiple' || k === 'required') el[k] = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// SVG elements (the progress chart)
const SVGNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.appendChild(c);
  return el;
}

// --- formatting --------------------------------------------------------------------------

export function fmtBytes(n) {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '—';
  n = Number(n);
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
}

export function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(Number(ms));
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtAgo(ms) {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - Number(ms)) / 1000);
  if (s < 0) return fmtTime(ms);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// a <time> with the exact time as its title and a relative text
export function timeEl(ms, relative = true) {
  return h('time', {
    datetime: ms ? new Date(Number(ms)).toISOString() : undefined,
    title: ms ? fmtTime(ms) : undefined,
    text: relative ? fmtAgo(ms) : fmtTime(ms),
  });
}

export function shortHash(hex) {
  if (!hex) return '—';
  return hex.length > 16 ? hex.slice(0, 8) + '…' + hex.slice(-6) : hex;
}

// a shortened hash with a copy button; the full value in the title
export function hashEl(hex) {
  if (!hex) return h('span', { class: 'muted', text: '—' });
  const btn = h('button', {
    type: 'button', class: 'icon-btn copy', title: 'Copy the full SHA-256', 'aria-label': 'copy SHA-256',
    onclick: async (e) => {
      e.stopPropagation();
      try {
        await navigator.clipboard.writeText(hex);
        toast('SHA-256 copied');
      } catch {
        toast('Copy failed: select the value instead', 'error');
      }
    },
  });
  btn.appendChild(copyIcon());
  return h('span', { class: 'hash' }, h('code', { title: hex, text: shortHash(hex), dataset: { full: hex } }), btn);
}

// two overlapping sheets: the copy icon (drawn, so that it needs no icon font)
function copyIcon() {
  return s('svg', { viewBox: '0 0 16 16', width: 13, height: 13, 'aria-hidden': 'true', class: 'ico-copy' },
    s('rect', { x: 5, y: 5, width: 9, height: 9, rx: 1.5 }), s('path', { d: 'M3 11V3a1 1 0 0 1 1-1h7' }));
}

export function badge(state, extra) {
  return h('span', { class: `badge st-${String(state || 'unknown').replace(/[^a-z_]/gi, '')}`, text: extra || state || '?' });
}

// --- toasts, dialogs -----------------------------------------------------------------------

export function toast(msg, kind = 'info', ms = 4000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast ${kind}`, text: msg });
  box.appendChild(t);
  setTimeout(() => t.remove(), ms);
}

// confirmDialog(title, text, okLabel, danger): a modal <dialog>; resolves true or false
export function confirmDialog(title, text, okLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'btn danger' : 'btn primary', text: okLabel, dataset: { test: 'confirm-ok' } });
    const cancel = h('button', { type: 'button', class: 'btn', text: 'Cancel', dataset: { test: 'confirm-cancel' } });
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title', text: title }),
      h('p', { text: text }),
      h('div', { class: 'row end' }, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// an error box for an API or validation error
export function errorBox(err) {
  if (!err) return null;
  const code = err.code ? h('code', { text: err.code }) : null;
  const status = err.status ? `HTTP ${err.status} ` : '';
  return h('div', { class: 'alert error', role: 'alert' },
    h('strong', { text: status }), code, code ? ' ' : null, h('span', { text: err.message || String(err) }));
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spin' }), h('span', { text }));
}

export function empty(text) {
  return h('div', { class: 'empty', text });
}

// a table: cols [{label, cls}], rows: arrays of cell contents (or <tr> nodes)
export function table(cols, rows, props = {}) {
  return h('table', { class: 'grid ' + (props.class || ''), ...props.attrs },
    h('thead', null, h('tr', null, cols.map((c) => h('th', { class: c.cls, text: c.label, scope: 'col' })))),
    h('tbody', null, rows.map((r) => (r instanceof Node ? r : h('tr', null, r.map((c) => h('td', null, c)))))));
}

// pager: {total, limit, offset}; go(offset)
export function pager(page, go) {
  const total = page.total ?? 0, limit = page.limit || 50, offset = page.offset || 0;
  const from = total === 0 ? 0 : offset + 1, to = Math.min(offset + limit, total);
  const pages = Math.max(1, Math.ceil(total / limit)), cur = Math.floor(offset / limit) + 1;
  return h('div', { class: 'pager', dataset: { test: 'pager' } },
    h('span', { class: 'muted', text: `${from}–${to} of ${total.toLocaleString('en')}` }),
    h('button', { type: 'button', class: 'btn small', text: '« First', disabled: offset === 0, onclick: () => go(0) }),
    h('button', { type: 'button', class: 'btn small', text: '‹ Prev', disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }),
    h('span', { class: 'pageno', text: `page ${cur} / ${pages}` }),
    h('button', { type: 'button', class: 'btn small', text: 'Next ›', disabled: offset + limit >= total, onclick: () => go(offset + limit), dataset: { test: 'next' } }),
    h('button', { type: 'button', class: 'btn small', text: 'Last »', disabled: offset + limit >= total, onclick: () => go((pages - 1) * limit) }));
}

// field(label, input, hint): a labelled form row with an error slot (.field-error)
export function field(label, input, hint) {
  const id = input.id || 'f-' + Math.random().toString(36).slice(2, 9);
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('div', { class: 'hint', text: hint }) : null,
    h('div', { class: 'field-error', role: 'alert', dataset: { for: id } }));
}

export function setFieldError(input, msg) {
  const row = input.closest('.field');
  const slot = row && row.querySelector('.field-error');
  if (slot) slot.textContent = msg || '';
  input.classList.toggle('invalid', !!msg);
  if (msg) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// throttle: at most one call per ms; the last call is never lost
export function throttle(fn, ms) {
  let last = 0, t = null;
  return (...a) => {
    const now = Date.now();
    clearTimeout(t);
    if (now - last >= ms) { last = now; fn(...a); }
    else t = setTimeout(() => { last = Date.now(); fn(...a); }, ms - (now - last));
  };
}
