// app.js: the console's shell: session start, the top bar and the navigation, and the
// router (URL hash: #/releases, #/fleet/VIN, #/campaigns/ID ...). Each page is a module
// with render(ctx); ctx gives the page its root element, its parameters, live events that
// end with the page, and a check that the page is still the current one.
import { h, replace, clear, errorBox, toast } from './dom.js';
import { session, signIn, signOut, resume } from './api.js';
import * as events from './events.js';
import * as releases from './releases.js';
import * as fleet from './fleet.js';
import * as vehicle from './vehicle.js';
import * as campaigns from './campaigns.js';
import * as campaign from './campaign.js';
import * as campaignNew from './campaign_new.js';
import * as diagnostics from './diagnostics.js';
import * as audit from './audit.js';

const NAV = [
  { path: 'releases', label: 'Notice board', icon: '▤' },
  { path: 'fleet', label: 'Fleet', icon: '◉' },
  { path: 'campaigns', label: 'Campaigns', icon: '➤' },
  { path: 'diagnostics', label: 'Diagnostics', icon: '⚕' },
  { path: 'audit', label: 'Audit log', icon: '☰', role: 'admin' },
];

// route(parts) -> {page, params, nav}
function route(parts) {
  const [a, b] = parts;
  switch (a) {
    case undefined: case '': case 'releases': return { page: releases, nav: 'releases' };
    case 'fleet': return b ? { page: vehicle, params: { vin: b }, nav: 'fleet' } : { page: fleet, nav: 'fleet' };
    case 'campaigns':
      if (b === 'new') return { page: campaignNew, nav: 'campaigns' };
      return b ? { page: campaign, params: { id: b }, nav: 'campaigns' } : { page: campaigns, nav: 'campaigns' };
    case 'diagnostics': return { page: diagnostics, params: { id: b }, nav: 'diagnostics' };
    case 'audit': return { page: audit, nav: 'audit', role: 'admin' };
    default: return null;
  }
}

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const qi = raw.indexOf('?');
  const path = qi >= 0 ? raw.slice(0, qi) : raw;
  const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
  const parts = path.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  return { path, parts, query };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

// --- the shell ------------------------------------------------------------------------------

const app = document.getElementById('app');
let shell = null; // {main, nav, user, conn}
let current = { gen: 0, cleanups: [] };

function buildShell() {
  const conn = h('span', { class: 'conn off', dataset: { test: 'conn' }, title: 'live event stream' },
    h('span', { class: 'dot' }), h('span', { class: 'conn-text', text: 'offline' }));
  const user = h('span', { class: 'user' },
    h('span', { class: 'user-name', dataset: { test: 'user-name' }, text: session.user.name }),
    h('span', { class: `role role-${session.user.role}`, dataset: { test: 'user-role' }, text: session.user.role }));
  const out = h('button', {
    type: 'button', class: 'btn ghost', text: 'Sign out', dataset: { test: 'signout' },
    onclick: async () => {
      try {
        await signOut();
      } catch (e) {
        toast('Sign-out failed, you are still signed in: ' + e.message, 'error');
        return;
      }
      events.disconnect();
      shell = null;
      location.hash = '#/signin';
    },
  });
  const nav = h('nav', { class: 'sidenav', 'aria-label': 'sections' },
    NAV.filter((n) => !n.role || session.can(n.role)).map((n) =>
      h('a', { href: '#/' + n.path, dataset: { nav: n.path } }, h('span', { class: 'ico', 'aria-hidden': 'true', text: n.icon }), h('span', { text: n.label }))));
  const main = h('main', { class: 'content', id: 'main', tabindex: '-1' });
  replace(app,
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/releases' }, h('span', { class: 'logo', 'aria-hidden': 'true', text: 'PQ' }), h('span', { text: 'pqota console' })),
      h('span', { class: 'spacer' }), conn, user, out),
    h('div', { class: 'body' }, nav, main));
  events.onState((s) => {
    conn.className = 'conn ' + s;
    conn.querySelector('.conn-text').textContent =
      { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', off: 'offline' }[s] || s;
  });
  shell = { main, nav };
}

function endPage() {
  for (const fn of current.cleanups) { try { fn(); } catch { /* a page's clean-up */ } }
  current = { gen: current.gen + 1, cleanups: [] };
}

async function render() {
  const { parts, query, path } = parseHash();
  endPage();
  if (parts[0] === 'signin' || !session.user) {
    if (parts[0] !== 'signin') {
      location.replace('#/signin?next=' + encodeURIComponent(path + (query.toString() ? '?' + query : '')));
      return;
    }
    shell = null;
    events.disconnect();
    renderSignIn(query.get('next') || 'releases');
    return;
  }
  if (!shell) buildShell();
  events.connect();
  const r = route(parts);
  for (const a of shell.nav.querySelectorAll('a')) a.classList.toggle('active', !!r && a.dataset.nav === r.nav);
  const root = clear(shell.main);
  if (!r) { root.appendChild(errorBox({ message: `no page '${path}'` })); return; }
  if (r.role && !session.can(r.role)) {
    root.appendChild(errorBox({ status: 403, code: 'forbidden', message: `this page needs the ${r.role} role; you are ${session.user.role}` }));
    return;
  }
  const gen = current.gen;
  document.title = `${(NAV.find((n) => n.path === r.nav) || {}).label || 'pqota'}${parts[1] ? ' · ' + parts[1] : ''} · pqota console`;
  const ctx = {
    root,
    params: r.params || {},
    query,
    alive: () => gen === current.gen,
    on: (name, fn) => { current.cleanups.push(events.on(name, (d, ev) => { if (gen === current.gen) fn(d, ev); })); },
    cleanup: (fn) => current.cleanups.push(fn),
    // fn every ms while the page is shown (the safety net beside the live events: a stream
    // shows one server instance's events)
    every: (ms, fn) => {
      const t = setInterval(() => { if (gen === current.gen && !document.hidden) fn(); }, ms);
      current.cleanups.push(() => clearInterval(t));
    },
    // change the hash's query without rendering the page again
    setQuery: (q) => {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== '' && v !== undefined && v !== null && v !== false) p.set(k, String(v));
      const s = p.toString();
      history.replaceState(null, '', '#/' + parts.map(encodeURIComponent).join('/') + (s ? '?' + s : ''));
    },
    reload: () => { if (gen === current.gen) render(); },
  };
  // events were missed: the page reloads what it shows (a page holding the operator's input
  // sets ctx.onReset to refresh only its data)
  ctx.on('reset', () => (ctx.onReset ? ctx.onReset() : ctx.reload()));
  try {
    await r.page.render(ctx);
  } catch (e) {
    if (gen === current.gen) root.appendChild(errorBox(e));
  }
}

function renderSignIn(next) {
  const key = h('input', {
    type: 'password', name: 'api_key', id: 'api-key', autocomplete: 'off', required: true,
    placeholder: 'pqk_…', spellcheck: 'false', dataset: { test: 'api-key' },
  });
  const err = h('div', { class: 'signin-error', dataset: { test: 'signin-error' } });
  const btn = h('button', { type: 'submit', class: 'btn primary wide', text: 'Sign in', dataset: { test: 'signin' } });
  const form = h('form', {
    class: 'signin-card', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      clear(err);
      const v = key.value.trim();
      if (v.length < 16 || v.length > 256) {
        err.appendChild(errorBox({ message: 'an API key is 16 to 256 characters (pqk_ and 64 hex digits)' }));
        key.focus();
        return;
      }
      btn.disabled = true;
      btn.textContent = 'Signing in…';
      try {
        await signIn(v);
        key.value = '';
        location.hash = '#/' + next.replace(/^\/+/, '');
      } catch (ex) {
        err.appendChild(errorBox(ex.status === 401 ? { status: 401, code: ex.code, message: 'unknown or revoked API key' } : ex));
        key.select();
      } finally {
        btn.disabled = false;
        btn.textContent = 'Sign in';
      }
    },
  },
  h('div', { class: 'brand big' }, h('span', { class: 'logo', 'aria-hidden': 'true', text: 'PQ' }), h('span', { text: 'pqota console' })),
  h('p', { class: 'muted', text: 'Sign in with an API key. The key is exchanged for a session cookie; it is not stored in the browser.' }),
  h('label', { for: 'api-key', text: 'API key' }), key, err, btn,
  h('p', { class: 'hint', text: 'Keys are made on the server: pqota server --config FILE apikey create --role operator --name NAME' }));
  replace(app, h('div', { class: 'signin-page' }, form));
  key.focus();
}

// --- start ----------------------------------------------------------------------------------

session.onUnauthenticated = () => {
  toast('Your session has ended: sign in again', 'error');
  events.disconnect();
  shell = null;
  render();
};

window.addEventListener('hashchange', () => render());

// the event stream was refused: if the session has ended, back to sign-in
events.setOnClosed(async () => {
  try {
    if (session.user && !(await resume()) && session.onUnauthenticated) {
      session.user = null;
      session.csrf = null;
      session.onUnauthenticated();
    }
  } catch { /* the server is unreachable: the stream keeps retrying */ }
});

(async () => {
  try {
    await resume();
  } catch (e) {
    replace(app, h('div', { class: 'signin-page' }, errorBox(e)));
    return;
  }
  render();
})();
